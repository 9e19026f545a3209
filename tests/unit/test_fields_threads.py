"""proc.nthreads and proc.nchilds: the kernel's live-thread count in the record header.

Golden cases follow falcosecurity/libs' own filter tests (a process of three threads, its
leader exiting first, then another thread): ``nthreads`` counts the live threads, the main
thread included while it lives; ``nchilds`` counts the others (threads, not child
processes).  Records are built with the layouts of bpf/abi.h and decoded by the real decoder.
"""

from __future__ import annotations

import pytest

from sysward.events.decoder import Decoder
from sysward.events.model import Event, Process
from sysward.events.types import BY_NAME, HEADER, INTS, HeaderFlag, HeaderThreads
from sysward.rules import load_rules_text

SHIFT = int(HeaderThreads.THREADS_SHIFT)
ALIVE = int(HeaderFlag.LEADER_ALIVE)


def record(type_name: str, flags: int, tid: int = 100) -> bytes:
    payload = INTS.struct.pack(0, 0, 0, 0)
    size = HEADER.size + len(payload)
    return HEADER.struct.pack(5_000, 0, 1_000, 0, size, BY_NAME[type_name].id, 0, 100, tid, 1,
                              0, 0, 0, 0, 0, 0, 0, 0, flags, b"worker") + payload


def decode(type_name: str, live: int, leader_alive: bool, tid: int = 100) -> Event:
    ev = Decoder(boot_offset=0).decode(
        record(type_name, live << SHIFT | (ALIVE if leader_alive else 0), tid))
    assert ev is not None
    ev.proc = Process(pid=100, comm="worker")
    return ev


def rendered(field: str, ev: Event) -> str:
    text = (f"- rule: R\n  desc: d\n  output: '%{field}'\n  priority: warning\n"
            f"  condition: evt.type = {ev.type}\n")
    res = load_rules_text(text, "t.yaml")
    assert res.ok, [str(d) for d in res.errors]
    rule = res.ruleset.rules[0]
    assert rule.matches(ev)
    return rule.render(ev)[0]


def matches(cond: str, ev: Event) -> bool:
    text = f"- rule: R\n  desc: d\n  output: o\n  priority: warning\n  condition: {cond}\n"
    res = load_rules_text(text, "t.yaml")
    assert res.ok, [str(d) for d in res.errors]
    return bool(res.ruleset.rules[0].matches(ev))


@pytest.mark.parametrize(("live", "leader_alive", "nthreads", "nchilds"), [
    (3, True, 3, 2),    # the main thread and two more: the leader is not a "child"
    (2, False, 2, 2),   # the leader exited first: the count drops, the children stay
    (1, False, 1, 1),   # then one more thread: one child left, and nothing else
    (1, True, 1, 0),    # a single-threaded process
    (0, False, 0, 0),   # procexit of the last thread: none is left
])
def test_counts_from_the_header(live: int, leader_alive: bool, nthreads: int,
                                nchilds: int) -> None:
    ev = decode("setuid", live, leader_alive, tid=101)
    assert (ev.nthreads, ev.nchilds) == (nthreads, nchilds)
    assert matches(f"evt.type = setuid and proc.nthreads = {nthreads}", ev)
    assert matches(f"evt.type = setuid and proc.nchilds = {nchilds}", ev)
    assert not matches(f"evt.type = setuid and proc.nthreads = {nthreads + 1}", ev)
    assert matches(f"evt.type = setuid and proc.nchilds < {nchilds + 1}", ev)
    assert rendered("proc.nthreads", ev) == str(nthreads)
    assert rendered("proc.nchilds", ev) == str(nchilds)


def test_count_is_capped_at_the_wire_maximum() -> None:
    top = int(HeaderThreads.THREADS_MAX)
    ev = decode("setuid", top, True)
    assert (ev.nthreads, ev.nchilds) == (top, top - 1)


def test_other_header_flags_leave_the_counts_alone() -> None:
    raw = 4 << SHIFT | ALIVE | int(HeaderFlag.TRUNCATED) | int(HeaderFlag.PF_REJECT)
    ev = Decoder(boot_offset=0).decode(record("setuid", raw))
    assert ev is not None and (ev.nthreads, ev.nchilds) == (4, 3)
    assert ev.args.get("truncated") is True


def test_unknown_counts_are_zero_as_in_falco_without_thread_group_info() -> None:
    # a hand-written or older captured event has no counts: Falco gives 0 without a thread
    # group, and so does sysward (the value is never missing)
    ev = Event(ts=1, type="setuid", pid=9, res=0, args={"uid": 0})
    ev.proc = Process(pid=9)
    assert matches("proc.nthreads = 0 and proc.nchilds = 0", ev)
    assert matches("proc.nthreads exists", ev)


def test_counts_survive_a_json_capture_and_replay() -> None:
    ev = decode("setuid", 5, True)
    back = Event.from_json(ev.to_json())
    assert (back.nthreads, back.nchilds) == (5, 4)
    assert ev.to_dict()["nthreads"] == 5 and ev.to_dict()["nchilds"] == 4
