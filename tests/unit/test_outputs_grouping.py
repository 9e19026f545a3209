"""Alert grouping: repeats of a rule in one process tree within the window are held (stored,
marked) and summarised once; the first is never held; other trees, other rules, enforcing
rules and later windows are their own groups; the state is bounded."""

from __future__ import annotations

from sysward.alert import Alert, Priority
from sysward.events.model import Event, Process
from sysward.outputs.grouping import Grouper

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000

INIT = Process(pid=1, comm="init", exepath="/sbin/init")


def _shell(pid: int) -> Process:
    p = Process(pid=pid, ppid=1, comm="bash", exepath="/usr/bin/bash", start_time=pid)
    p.parent = INIT
    return p


SHELL = _shell(100)


def _event(pid: int, parent: Process = SHELL, at_s: float = 0) -> Event:
    p = Process(pid=pid, ppid=parent.pid, comm="x", exepath="/usr/bin/x", start_time=pid)
    p.parent = parent
    return Event(ts=T0 + int(at_s * S), type="dup2", pid=pid, proc=p, start_time=pid)


def _alert(ev: Event, rule: str = "R") -> Alert:
    return Alert(time=ev.ts, rule=rule, priority=Priority.CRITICAL, output=f"o {ev.pid}",
                 output_fields={"proc.pid": ev.pid})


def test_first_goes_out_repeats_are_held_and_summarised() -> None:
    g = Grouper(window_s=60)
    first = _event(200)
    a = _alert(first)
    assert g.admit(a, first) is False
    gid = a.output_fields["group.id"]
    held = []
    for i in range(9):  # the reverse shell's rc helpers: children of the first process
        ev = _event(300 + i, parent=first.proc or SHELL, at_s=1 + i)
        rep = _alert(ev)
        assert g.admit(rep, ev) is True
        held.append(rep)
    assert [r.output_fields["group.seq"] for r in held] == list(range(2, 11))
    assert {r.output_fields["group.id"] for r in held} == {gid}
    assert g.held == 9
    assert g.expired(T0 + 30 * S) == []  # window still open
    (summary,) = g.expired(T0 + 61 * S)
    assert summary.rule == "R" and summary.output_fields["group.count"] == 10
    assert summary.output == "o 200 [grouped: 10 alerts in 9.0s]"
    assert g.open_groups == 0


def test_siblings_share_a_tree_other_trees_and_rules_do_not() -> None:
    g = Grouper(window_s=60)
    assert g.admit(_alert(e := _event(200)), e) is False
    assert g.admit(_alert(e := _event(201)), e) is True  # sibling: same parent shell
    other = _shell(500)
    assert g.admit(_alert(e := _event(501, parent=other)), e) is False
    assert g.admit(_alert(e := _event(202), rule="Other"), e) is False


def test_a_group_without_repeats_sends_no_summary_and_a_later_window_is_new() -> None:
    g = Grouper(window_s=10)
    assert g.admit(_alert(e := _event(200)), e) is False
    assert g.expired(T0 + 11 * S) == []
    assert g.admit(_alert(e := _event(201, at_s=12)), e) is False  # a new group, notified
    assert g.admit(_alert(e := _event(202, at_s=30)), e) is False  # past that window too


def test_enforcing_alerts_are_never_grouped() -> None:
    g = Grouper(window_s=60)
    assert g.admit(_alert(e := _event(200)), e) is False
    assert g.admit(_alert(e := _event(201)), e, enforcing=True) is False


def test_bounded_groups_close_early_and_still_summarise() -> None:
    g = Grouper(window_s=60, max_groups=2)
    shells = [_shell(1000 + i) for i in range(3)]
    for i, sh in enumerate(shells):
        assert g.admit(_alert(e := _event(2000 + i, parent=sh)), e) is False
        if i == 0:
            assert g.admit(_alert(e := _event(2100, parent=sh)), e) is True
    assert g.open_groups == 2 and g.closed_early == 1
    (summary,) = g.expired(T0)  # the evicted group had a repeat: its summary is not lost
    assert summary.output_fields["group.count"] == 2


def test_flush_summarises_open_groups() -> None:
    g = Grouper(window_s=60)
    assert g.admit(_alert(e := _event(200)), e) is False
    assert g.admit(_alert(e := _event(201)), e) is True
    (summary,) = g.flush()
    assert summary.output_fields["group.count"] == 2 and g.open_groups == 0
