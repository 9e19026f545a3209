"""Correlation rules (``correlate:``, sysward's extension of Falco rules): validation with
one clear message per mistake, threshold and sequence semantics over event time, bounded
state, the process-tree key, and ``sysward replay`` deciding as the agent does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from sysward.cli import cli
from sysward.events.model import Event, Process
from sysward.rules import load_rules_text
from sysward.rules.correlation import parse_duration

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000

THRESHOLD = """\
- rule: Burst
  desc: d
  condition: evt.type = execve and proc.name in (uname, id, whoami, ps, ss)
  correlate:
    threshold: 3
    distinct: proc.name
    window: 60s
  output: burst (last=%proc.name)
  priority: NOTICE
  tags: [t]
"""

SEQUENCE = """\
- rule: Written then run
  desc: d
  condition: not proc.name = make
  correlate:
    window: 5m
    sequence:
      - condition: evt.type = openat and evt.is_open_write = true
        capture: fd.name
      - condition: evt.type = execve
        equals: proc.exepath
  output: ran %proc.exepath
  priority: ERROR
  tags: [t]
"""

SHELL = Process(pid=100, ppid=1, comm="bash", exepath="/usr/bin/bash", start_time=5)
SHELL.parent = Process(pid=1, comm="init", exepath="/sbin/init")


def _proc(pid: int, comm: str, exe: str = "", parent: Process | None = SHELL) -> Process:
    p = Process(pid=pid, ppid=parent.pid if parent else 0, comm=comm,
                exepath=exe or f"/usr/bin/{comm}", argv=[comm], start_time=pid)
    p.parent = parent
    return p


def _exec(pid: int, comm: str, at_s: float = 0, exe: str = "",
          parent: Process | None = SHELL) -> Event:
    p = _proc(pid, comm, exe, parent)
    return Event(ts=T0 + int(at_s * S), type="execve", pid=pid, comm=comm,
                 args={"filename": p.exepath}, proc=p, num=pid, start_time=p.start_time)


def _write(pid: int, comm: str, path: str, at_s: float = 0,
           parent: Process | None = SHELL) -> Event:
    p = _proc(pid, comm, "", parent)
    return Event(ts=T0 + int(at_s * S), type="openat", pid=pid, comm=comm, res=3,
                 args={"name": path, "flags": 0o1101, "dirfd": -100}, proc=p, num=pid,
                 start_time=p.start_time)


def _load(text: str) -> Any:
    res = load_rules_text(text)
    assert res.ok, [str(d) for d in res.errors]
    return res.ruleset


def _fired(ruleset: Any, events: list[Event]) -> list[int]:
    """Indexes of the events the rule fired on."""
    return [i for i, ev in enumerate(events) if ruleset.match(ev)]


def test_threshold_counts_distinct_values_within_the_window() -> None:
    rs = _load(THRESHOLD)
    evs = [_exec(201, "uname"), _exec(202, "uname", 1), _exec(203, "id", 2),
           _exec(204, "whoami", 3)]
    assert _fired(rs, evs) == [3]
    # after firing, the next burst counts from zero
    assert _fired(rs, [_exec(205, "ps", 4), _exec(206, "ss", 5)]) == []


def test_threshold_forgets_what_fell_out_of_the_window() -> None:
    rs = _load(THRESHOLD)
    evs = [_exec(201, "uname"), _exec(202, "id", 50), _exec(203, "whoami", 70),
           _exec(204, "ps", 100)]
    # at 70 s uname has expired; at 100 s id too: never 3 distinct within 60 s ... until ps
    assert _fired(rs, evs) == [3]


def test_threshold_keys_by_process_tree() -> None:
    rs = _load(THRESHOLD)
    other = Process(pid=300, ppid=1, comm="bash", exepath="/usr/bin/bash", start_time=7)
    other.parent = SHELL.parent
    evs = [_exec(201, "uname"), _exec(302, "id", 1, parent=other), _exec(203, "whoami", 2)]
    assert _fired(rs, evs) == []
    # a grandchild of the first shell (a subshell's child) is in its tree
    sub = _proc(250, "bash", "/usr/bin/bash", SHELL)
    assert _fired(rs, [_exec(251, "ps", 3, parent=sub)]) == [0]


def test_threshold_keyed_by_a_field() -> None:
    rs = _load(THRESHOLD.replace("window: 60s", "window: 60s\n    by: user.uid"))
    other = Process(pid=300, ppid=1, comm="bash", exepath="/usr/bin/bash", start_time=7)
    evs = [_exec(201, "uname"), _exec(302, "id", 1, parent=other), _exec(203, "whoami", 2)]
    assert _fired(rs, evs) == [2]  # same uid (0) in both trees


def test_alert_carries_the_correlation() -> None:
    from sysward.rules import alert_for

    rs = _load(THRESHOLD)
    evs = [_exec(201, "uname"), _exec(203, "id", 2), _exec(204, "whoami", 3)]
    for ev in evs:
        fired = rs.match(ev)
    (rule,) = fired
    alert = alert_for(rule, evs[-1], "h")
    assert alert.output_fields["correlation.count"] == 3
    assert alert.output_fields["correlation.values"] == ["uname", "id", "whoami"]
    assert alert.output.startswith("burst (last=whoami) [correlation: 3 events within 60s")


def test_sequence_binds_the_captured_value() -> None:
    rs = _load(SEQUENCE)
    evs = [_write(201, "curl", "/tmp/x"), _exec(202, "ls", 1),
           _exec(203, "x", 2, exe="/tmp/y"), _exec(204, "x", 3, exe="/tmp/x")]
    assert _fired(rs, evs) == [3]
    # completed: running it again is no new sequence
    assert _fired(rs, [_exec(205, "x", 4, exe="/tmp/x")]) == []


def test_sequence_order_window_tree_and_common_condition() -> None:
    rs = _load(SEQUENCE)
    # executed before it was written
    assert _fired(rs, [_exec(202, "x", 0, exe="/tmp/x"), _write(201, "curl", "/tmp/x", 1)]) == []
    rs.reset_correlations()
    # outside the 5 minute window
    assert _fired(rs, [_write(201, "curl", "/tmp/x"), _exec(202, "x", 301, exe="/tmp/x")]) == []
    rs.reset_correlations()
    # another tree
    other = Process(pid=300, ppid=1, comm="cron", exepath="/usr/sbin/cron", start_time=7)
    other.parent = SHELL.parent
    assert _fired(rs, [_write(201, "curl", "/tmp/x"),
                       _exec(302, "x", 1, exe="/tmp/x", parent=other)]) == []
    rs.reset_correlations()
    # the rule's own condition applies to every step
    assert _fired(rs, [_write(201, "make", "/tmp/x"), _exec(202, "x", 1, exe="/tmp/x")]) == []


def test_state_is_bounded_and_evictions_counted() -> None:
    rs = _load(SEQUENCE.replace("window: 5m", "window: 5m\n    max_keys: 4\n    by: proc.pid"))
    for pid in range(10):
        rs.match(_write(500 + pid, "curl", f"/tmp/f{pid}"))
    stats = rs.correlation_stats()
    assert stats["keys"] == 4 and stats["evicted"] == 6


def test_step_rules_feed_the_prefilter_and_the_index() -> None:
    rs = _load(SEQUENCE)
    (rule,) = rs.rules
    assert rule.event_types == frozenset({"openat", "execve"})
    assert rule.condition_for("openat") is not None


@pytest.mark.parametrize(("correlate", "message"), [
    ("correlate: 5", "'correlate' must be a mapping"),
    ("correlate: {window: 60}", "needs exactly one of 'threshold'"),
    ("correlate: {threshold: 1}", "'threshold' must be a whole number from 2"),
    ("correlate: {threshold: 3, window: soon}", "'window' must be a duration"),
    ("correlate: {threshold: 3, window: 0}", "more than 0"),
    ("correlate: {threshold: 3, by: 'proc name'}", "'by' must name one field"),
    ("correlate: {threshold: 3, distinct: proc.nope}", "unknown field 'proc.nope'"),
    ("correlate: {threshold: 3, keep: 2}", "unknown key 'keep' in 'correlate'"),
    ("correlate: {sequence: [{condition: evt.type = execve}]}", "2 to 8 steps"),
    ("correlate: {sequence: [{condition: evt.type = execve},"
     " {condition: evt.type = openat, equals: fd.name}]}", "captures nothing"),
    ("correlate: {sequence: [{condition: evt.type = execve}, {condition: 'evt.type = ('}]}",
     "step 2 of the sequence"),
    ("correlate: {threshold: 3}\n  action: kill", "enforcement acts on one event"),
])
def test_bad_correlate_is_one_clear_error(correlate: str, message: str) -> None:
    text = ("- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: o\n"
            f"  priority: NOTICE\n  {correlate}\n")
    res = load_rules_text(text)
    assert not res.ok
    assert message in str(res.errors[0]), str(res.errors[0])
    assert res.errors[0].line > 0


def test_durations() -> None:
    assert parse_duration(90, "window") == 90.0
    assert parse_duration("1.5m", "window") == 90.0
    assert parse_duration("250ms", "window") == 0.25
    assert parse_duration("2h", "window") == 7200.0


def test_replay_evaluates_correlation_rules(tmp_path: Path) -> None:
    def line(etype: str, args: dict[str, Any], dt: float, pid: int, comm: str) -> str:
        return orjson.dumps({"ts": T0 + int(dt * S), "type": etype, "args": args, "pid": pid,
                             "ppid": 100, "comm": comm}).decode()

    lines = [line("execve", {"filename": f"/usr/bin/{c}"}, i, 200 + i, c)
             for i, c in enumerate(["uname", "id", "id", "whoami"])]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(THRESHOLD.replace("    distinct: proc.name\n",
                                       "    distinct: proc.name\n    by: proc.ppid\n"))
    result = CliRunner().invoke(cli, ["replay", str(events), "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert [a["rule"] for a in alerts] == ["Burst"]
    assert alerts[0]["output_fields"]["correlation.values"] == ["uname", "id", "whoami"]


def test_rules_check_accepts_the_default_correlation_rules(tmp_path: Path) -> None:
    rules_d = Path(__file__).parents[2] / "src" / "sysward" / "rules.d"
    result = CliRunner().invoke(cli, ["rules", "check", str(rules_d)])
    assert result.exit_code == 0, result.output
