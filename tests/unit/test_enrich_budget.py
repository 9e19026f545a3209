"""The process table under churn: its byte budget, what exited processes are kept for, and
how small entries are (synthetic event streams, no /proc)."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from sysward.agent.engine import DEFAULT_RULES_DIR, env_keys
from sysward.config import load_config
from sysward.enrich import Enricher, ProcessTable
from sysward.enrich.proctable import ENTRY_BYTES, entry_bytes
from sysward.errors import SyswardError
from sysward.events.model import Event, Process
from sysward.rules import load_rules

SEC = 1_000_000_000
T0 = 1_800_000_000 * SEC
ENV = [f"VAR_{i:02d}=" + "x" * 40 for i in range(20)] + ["LD_PRELOAD=/tmp/evil.so"]


def ev(type_: str, pid: int, ts: int, res: int = 0, **kw: Any) -> Event:
    kw.setdefault("tid", pid)
    return Event(ts=ts, type=type_, pid=pid, res=res, **kw)


def fresh(text: str) -> str:
    """A new str object with this text, as the decoder makes one per event."""
    return (text + ".")[:-1]


def churn(enr: Enricher, parent: int, n: int, *, start: int = 0, ts0: int = T0,
          per_s: int = 1000, argv_pad: int = 0) -> int:
    """``parent`` forks and execs ``n`` short-lived children; returns the last event time."""
    ts = ts0
    for i in range(start, start + n):
        ts += SEC // per_s
        pid = 100_000 + i
        enr.process(ev("clone", parent, ts, res=pid, comm="make", args={"flags": 17}))
        enr.process(ev("execve", pid, ts + 1, ppid=parent, comm="cc", start_time=ts,
                       args={"filename": fresh("/usr/bin/cc"),
                             "argv": [fresh("cc"), fresh("-c"), f"file{i}.c", "x" * argv_pad],
                             "env": [fresh(v) for v in ENV], "cwd": f"/build/dir{i % 50}"}))
        enr.process(ev("openat", pid, ts + 2, ppid=parent, comm="cc", res=3,
                       args={"name": f"/build/file{i}.c"}))
        enr.process(ev("procexit", pid, ts + 3, ppid=parent, comm="cc"))
    return ts + 3


def chain(enr: Enricher) -> None:
    """bash(10) -> make(11), both live."""
    enr.process(ev("execve", 10, T0, ppid=1, comm="bash", args={"filename": "/bin/bash",
                                                                "argv": ["bash"]}))
    enr.process(ev("clone", 10, T0, res=11, comm="bash", args={"flags": 17}))
    enr.process(ev("execve", 11, T0, ppid=10, comm="make", args={"filename": "/usr/bin/make",
                                                                 "argv": ["make", "-j2"]}))


def test_the_table_stays_within_its_byte_budget() -> None:
    enr = Enricher(seed_from_proc=False, max_bytes=256 << 10, exit_grace_s=30)
    chain(enr)
    peak = 0
    ts = T0
    for start in range(0, 3000, 100):
        ts = churn(enr, 11, 100, start=start, ts0=ts, argv_pad=500)
        peak = max(peak, enr.table.total_bytes)
    assert peak <= 256 << 10
    st = enr.stats()
    # exited entries went before their 30 s grace: their quarter of the budget was full
    assert st["sysward_enrich_evictions_exited_early_total"] > 2000
    assert st["sysward_enrich_evictions_budget_total"] == 0  # no live entry had to go
    assert enr.table.exited_bytes <= enr.table.exited_max_bytes
    # the grace adapted: what the quarter holds at 1000 exits/s, well under 30 s
    assert 0 < st["sysward_enrich_exit_grace_seconds"] < 1.0
    assert enr.lookup(10) is not None and enr.lookup(11) is not None


def test_live_entries_go_least_recently_seen_first_when_the_budget_is_full() -> None:
    table = ProcessTable(max_bytes=40 * ENTRY_BYTES, exit_grace_s=5)
    for pid in range(1, 60):
        table.put(Process(pid=pid, argv=["daemon"]))
        table.touch(1)  # pid 1 stays the most recently seen
    assert table.total_bytes <= 40 * ENTRY_BYTES
    assert table.evictions["budget"] > 0 and table.evictions["count"] == 0
    assert 1 in table and 59 in table and 2 not in table


def test_without_pressure_an_exited_entry_stays_for_the_grace() -> None:
    enr = Enricher(seed_from_proc=False, exit_grace_s=2)
    chain(enr)
    enr.process(ev("clone", 11, T0 + 1, res=50, comm="make", args={"flags": 17}))
    enr.process(ev("procexit", 50, T0 + 2, comm="make"))
    enr.process(ev("openat", 10, T0 + SEC, comm="bash"))
    assert enr.lookup(50) is not None  # a late event of it would still find it
    enr.process(ev("openat", 10, T0 + 3 * SEC, comm="bash"))
    assert enr.lookup(50) is None
    st = enr.stats()
    assert st["sysward_enrich_evictions_expired_total"] == 1
    assert st["sysward_enrich_exit_grace_seconds"] == 2.0


def test_an_exited_parent_stays_while_a_live_child_refers_to_it() -> None:
    enr = Enricher(seed_from_proc=False, exit_grace_s=1)
    chain(enr)
    enr.process(ev("clone", 11, T0 + 1, res=12, comm="make", args={"flags": 17}))
    enr.process(ev("execve", 12, T0 + 2, ppid=11, comm="sh", args={"filename": "/bin/sh",
                                                                    "argv": ["sh"]}))
    enr.process(ev("procexit", 11, T0 + 3, comm="make"))  # make exits, sh lives on
    enr.process(ev("openat", 10, T0 + 5 * SEC, comm="bash"))  # the grace is long over
    assert enr.lookup(11) is None
    table = enr.table
    assert table.ghost_count == 1 and table.ghost_bytes > 0
    make = table.lookup_parent(11)
    assert make is not None and make.comm == "make" and make.exit_time
    # an event of sh emitted before its re-parenting still names make as its parent
    late = ev("openat", 12, T0 + 5 * SEC + 1, ppid=11, comm="sh")
    enr.process(late)
    assert late.proc is not None and late.proc.parent is make
    del make, late
    # sh exits and goes: nothing refers to make any more, and the table stops counting it
    enr.process(ev("procexit", 12, T0 + 6 * SEC, comm="sh"))
    enr.process(ev("openat", 10, T0 + 9 * SEC, comm="bash"))
    gc.collect()
    assert table.lookup_parent(11) is None
    assert table.ghost_count == 0 and table.ghost_bytes == 0


def test_a_fork_whose_child_already_exited_does_not_bring_it_back() -> None:
    enr = Enricher(seed_from_proc=False, exit_grace_s=2)
    chain(enr)
    # the child ran on the other CPU: exec and exit reported before the parent's fork returns
    enr.process(ev("execve", 60, T0 + 10, ppid=11, comm="true", start_time=T0 + 5,
                   args={"filename": "/bin/true", "argv": ["true"]}))
    enr.process(ev("procexit", 60, T0 + 20, ppid=11, comm="true"))
    enr.process(ev("clone", 11, T0 + 30, res=60, comm="make", args={"flags": 17}))
    child = enr.lookup(60)
    assert child is not None and child.exit_time and child.exepath == "/bin/true"
    enr.process(ev("openat", 10, T0 + 3 * SEC, comm="bash"))
    assert enr.lookup(60) is None and enr.table.exited_count == 0


def test_ancestry_of_live_processes_survives_churn_through_a_small_budget(
        tmp_path: Path) -> None:
    rule = tmp_path / "ancestry.yaml"
    rule.write_text(
        "- rule: marker\n"
        "  desc: d\n"
        "  condition: evt.type = openat and fd.name = /tmp/marker\n"
        "  output: \"%proc.name %proc.pname %proc.aname[2] %proc.aname[3] %proc.apid[2]\"\n"
        "  priority: WARNING\n")
    rs = load_rules([rule]).ruleset
    enr = Enricher(seed_from_proc=False, max_bytes=128 << 10)
    enr.process(ev("openat", 1, T0, ppid=0, comm="init"))
    chain(enr)
    enr.process(ev("clone", 11, T0 + 1, res=12, comm="make", args={"flags": 17}))
    enr.process(ev("execve", 12, T0 + 2, ppid=11, comm="ld", args={"filename": "/usr/bin/ld",
                                                                    "argv": ["ld"]}))
    churn(enr, 11, 5000, ts0=T0 + 3)
    assert enr.stats()["sysward_enrich_evictions_exited_early_total"] > 0
    marker = ev("openat", 12, T0 + 10 * SEC, ppid=11, comm="ld", res=3,
                args={"name": "/tmp/marker"})
    enr.process(marker)
    fired = rs.match(marker)
    assert [r.name for r in fired] == ["marker"]
    _, values = fired[0].render(marker)
    assert values == {"proc.name": "ld", "proc.pname": "make", "proc.aname[2]": "bash",
                      "proc.aname[3]": "init", "proc.apid[2]": 10}


def test_env_keeps_only_what_the_rules_read() -> None:
    def exec_env(keys: frozenset[str] | None) -> list[str]:
        enr = Enricher(seed_from_proc=False, env_keys=keys)
        e = ev("execve", 5, T0, comm="x", args={"filename": "/x", "argv": ["x"],
                                                "env": list(ENV)})
        enr.process(e)
        assert e.proc is not None
        return e.proc.env

    assert exec_env(None) == ENV
    assert exec_env(frozenset({"LD_PRELOAD", "HOME"})) == ["LD_PRELOAD=/tmp/evil.so"]
    assert exec_env(frozenset()) == []
    default = env_keys(load_rules([DEFAULT_RULES_DIR]).ruleset)
    assert default is not None and "LD_PRELOAD" in default and "GLIBC_TUNABLES" in default


def test_a_rule_reading_the_whole_env_keeps_all_of_it(tmp_path: Path) -> None:
    rule = tmp_path / "env.yaml"
    rule.write_text("- rule: whole env\n  desc: d\n  condition: evt.type = execve and "
                    "proc.env contains SECRET\n  output: x\n  priority: NOTICE\n")
    assert env_keys(load_rules([rule]).ruleset) is None
    rule.write_text("- rule: no env\n  desc: d\n  condition: evt.type = execve\n"
                    "  output: \"%proc.env[TERM]\"\n  priority: NOTICE\n")
    assert env_keys(load_rules([rule]).ruleset) == frozenset({"TERM"})


def test_argv_and_env_are_capped_per_process() -> None:
    enr = Enricher(seed_from_proc=False, max_argv_bytes=1024, max_env_bytes=512)
    argv = ["java"] + [f"-Dprop{i}=value{i}" for i in range(200)]
    e = ev("execve", 7, T0, comm="java", args={"filename": "/usr/bin/java", "argv": argv,
                                               "env": list(ENV)})
    enr.process(e)
    p = e.proc
    assert p is not None and p.argv[0] == "java" and 1 < len(p.argv) < len(argv)
    assert p.argv == argv[: len(p.argv)]
    assert 0 < len(p.env) < len(ENV)
    big = ev("execve", 8, T0, comm="sh", args={"filename": "/bin/sh", "argv": ["x" * 5000]})
    enr.process(big)
    assert big.proc is not None and len(big.proc.argv) == 1
    assert 0 < len(big.proc.argv[0]) < 1024
    assert enr.stats()["sysward_enrich_lists_capped_total"] == 3


def test_entries_share_strings_and_the_events_lists() -> None:
    enr = Enricher(seed_from_proc=False)
    procs = []
    for pid in (20, 21):
        argv = ["cc", "-c", "a.c"]
        e = ev("execve", pid, T0, comm="cc",
               args={"filename": "".join(["/usr/bin/", "cc"]), "argv": argv,
                     "cwd": "".join(["/src/", "proj"])})
        enr.process(e)
        assert e.proc is not None and e.proc.argv is argv  # kept, not copied
        procs.append(e.proc)
    a, b = procs
    assert a.exepath is b.exepath and a.cwd is b.cwd and a.comm is b.comm


def test_the_estimate_is_an_upper_bound_of_what_entries_really_take() -> None:
    enr = Enricher(seed_from_proc=False, exit_grace_s=3600, max_bytes=512 << 20)
    chain(enr)
    churn(enr, 11, 200)  # warm up caches and pools
    gc.collect()
    before_bytes = enr.table.total_bytes
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        churn(enr, 11, 5000, start=200, ts0=T0 + SEC)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    estimated = enr.table.total_bytes - before_bytes
    assert len(enr.table) >= 5000
    assert estimated >= used, (estimated, used)
    assert estimated <= 2.5 * used, (estimated, used)  # an estimate, not a guess


def test_entry_bytes_follows_the_lists() -> None:
    small = Process(pid=1, argv=["a"])
    large = Process(pid=2, argv=["a", "b" * 1000], env=["X=1"])
    assert entry_bytes(large) - entry_bytes(small) > 1000


@pytest.mark.parametrize("key,value", [("process_table.max_mb", "0"),
                                       ("process_table.max_argv_bytes", "10"),
                                       ("process_table.max_env_bytes", "-1")])
def test_bad_table_settings_are_refused_with_a_sentence(key: str, value: str) -> None:
    with pytest.raises(SyswardError, match=key.replace(".", r"\.")):
        load_config(None, {key: value})
