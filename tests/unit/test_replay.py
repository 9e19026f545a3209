"""`sysward replay`: recorded events -> enrichment -> rules -> alerts, and its error handling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from sysward.cli import cli, main
from sysward.cli.replay_cmd import parse_event, replay_events
from sysward.errors import SyswardError

FALCO = Path(__file__).parents[2] / ".." / "shared" / "falco-rules" / "falco_rules.yaml"
T0 = 1_700_000_000_000_000_000

RULE = """\
- rule: Shadow read
  desc: test rule
  condition: evt.type in (open, openat) and fd.name = /etc/shadow and evt.is_open_read = true
  output: shadow read by %proc.name (parent=%proc.pname flags=%evt.arg.flags res=%evt.res)
  priority: WARNING
  tags: [test]
"""


def line(etype: str, args: dict[str, Any], **hdr: Any) -> str:
    return orjson.dumps({"ts": T0 + hdr.pop("dt", 0), "type": etype, "args": args,
                         **hdr}).decode()


def run(tmp_path: Path, lines: list[str], *extra: str, rules: str = RULE) -> Any:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(rules)
    return CliRunner().invoke(cli, ["replay", str(events), "--rules", str(rule_file), *extra])


def shadow_open(**hdr: Any) -> str:
    return line("openat", {"name": "/etc/shadow", "flags": 0, "dirfd": -100}, res=3,
                pid=50, comm="cat", **hdr)


def test_json_alerts_have_falcos_shape(tmp_path: Path) -> None:
    result = run(tmp_path, [shadow_open(), line("openat", {"name": "/etc/hosts", "flags": 0},
                                                res=3, pid=50, comm="cat")],
                 "--hostname", "node1")
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert len(alerts) == 1
    a = alerts[0]
    assert set(a) >= {"time", "rule", "priority", "output", "output_fields", "tags", "hostname",
                      "source"}
    assert a["rule"] == "Shadow read" and a["priority"] == "Warning" and a["hostname"] == "node1"
    assert a["time"] == "2023-11-14T22:13:20.000000000Z"
    assert a["output"].endswith("shadow read by cat (parent=<NA> flags=O_RDONLY res=SUCCESS)")
    assert a["output_fields"]["proc.name"] == "cat" and a["output_fields"]["proc.pname"] is None
    assert "replayed 2 events: 1 alerts" in result.stderr


def test_text_format(tmp_path: Path) -> None:
    result = run(tmp_path, [shadow_open()], "--format", "text")
    assert result.exit_code == 0
    out = [x for x in result.stdout.splitlines() if x.strip()]
    assert len(out) == 1 and ": Warning shadow read by cat" in out[0]


def test_bad_lines_are_counted_with_line_numbers(tmp_path: Path) -> None:
    lines = [shadow_open(), "{not json", '{"ts": "soon", "type": "openat"}', "[1, 2]", "",
             '{"ts": 1, "type": "openat", "args": [1]}', '{"ts": 1, "type": "x", "pid": "7"}',
             shadow_open(dt=1)]
    result = run(tmp_path, lines)
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "Traceback" not in result.output
    assert "5 bad lines skipped" in result.stderr
    for n in (2, 3, 4, 6, 7):
        assert f"line {n}:" in result.stderr
    assert "replayed 2 events: 2 alerts" in result.stderr


def test_events_that_fail_to_evaluate_are_counted() -> None:
    def match(ev: Any) -> list[Any]:
        if ev.pid == 2:
            raise TypeError("boom")
        return []

    lines = [line("openat", {}, pid=p) for p in (1, 2, 3)]
    stats = replay_events(lines, match, lambda r, e: None, lambda a: None)
    assert (stats.events, stats.eval_errors, stats.eval_error_lines) == (3, 1, [2])
    assert "1 events failed to evaluate (line 2)" in stats.summary()


def test_missing_file_and_unloadable_rules_are_user_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["replay", str(tmp_path / "nope.jsonl"), "--rules",
                                      str(tmp_path)])
    assert result.exit_code != 0
    bad_rules = run(tmp_path, [shadow_open()], rules="- rule: broken\n  condition: (\n")
    assert bad_rules.exit_code != 0


def test_parse_event_keeps_process_context() -> None:
    ev = parse_event(orjson.dumps({"ts": 5, "type": "execve", "proc": {
        "pid": 3, "comm": "sh", "parent": {"pid": 2, "comm": "nginx"}}}))
    assert ev.proc is not None and ev.proc.parent is not None
    assert ev.proc.parent.comm == "nginx"
    with pytest.raises(ValueError, match="not JSON"):
        parse_event(b"{")


@pytest.mark.skipif(not FALCO.exists(), reason="shared Falco rules not present")
def test_enrichment_builds_ancestry_from_the_stream(tmp_path: Path) -> None:
    """No `proc` keys: the process tree comes from the exec and clone events themselves."""
    lines = [
        line("execve", {"filename": "/usr/sbin/nginx", "argv": ["nginx"], "cwd": "/"},
             pid=700, tid=700, ppid=1, comm="nginx"),
        line("clone", {"flags": 17}, pid=700, tid=700, ppid=1, comm="nginx", res=701, dt=1),
        line("execve", {"filename": "/usr/bin/bash", "argv": ["bash", "-c", "id"], "cwd": "/"},
             pid=701, tid=701, ppid=700, comm="bash", dt=2),
    ]
    result = CliRunner().invoke(cli, ["replay", "-", "--rules", str(FALCO)],
                                input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    fired = {a["rule"]: a for a in alerts}
    assert "Run shell untrusted" in fired, result.stderr
    assert fired["Run shell untrusted"]["output_fields"]["proc.pname"] == "nginx"


def test_snapshot_gives_ancestry_of_processes_started_before_the_capture(
        tmp_path: Path) -> None:
    """The capture's first lines describe processes alive when it started: nginx (700) runs
    already, only its shell child's exec is in the stream."""
    rules = RULE.replace("Shadow read", "Shadow read by child").replace(
        "fd.name = /etc/shadow", "fd.name = /etc/shadow and proc.pname = nginx")
    snap = [orjson.dumps({"snapshot": "proc", "ts": T0, "proc": p}).decode() for p in (
        {"pid": 701, "ppid": 700, "comm": "cat", "exepath": "/usr/bin/cat", "argv": ["cat"]},
        {"pid": 700, "ppid": 1, "comm": "nginx", "exepath": "/usr/sbin/nginx",
         "argv": ["nginx"]},
        {"pid": 1, "ppid": 0, "comm": "init", "exepath": "/sbin/init", "argv": ["init"]},
    )]
    ev = line("openat", {"name": "/etc/shadow", "flags": 0, "dirfd": -100}, res=3,
              pid=701, tid=701, ppid=700, comm="cat")
    result = run(tmp_path, [*snap, ev], rules=rules)
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(x) for x in result.stdout.splitlines()]
    assert [a["output_fields"]["proc.pname"] for a in alerts] == ["nginx"]
    assert "replayed 1 events: 1 alerts (3 processes from the capture's snapshot)" in \
        result.stderr
    # without the snapshot the parent is unknown and the rule cannot match
    assert run(tmp_path, [ev], rules=rules).stdout == ""


def test_no_valid_event_is_an_error(tmp_path: Path) -> None:
    result = run(tmp_path, ["not json", '{"type": 5}'])
    assert isinstance(result.exception, SyswardError) and result.exception.exit_code == 1
    assert "no valid event in" in str(result.exception)
    assert "2 bad lines" in str(result.exception)
    empty = run(tmp_path, [""])
    assert isinstance(empty.exception, SyswardError) and empty.exception.exit_code == 1


def test_a_directory_is_named_as_such(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["replay", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "it is a directory" in err and "no such file" not in err


def test_packaged_rules_are_the_default(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(line("execve", {"filename": "/usr/bin/true", "argv": ["true"],
                                      "cwd": "/"}, pid=5, comm="true") + "\n")
    result = CliRunner().invoke(cli, ["replay", str(events)])
    assert result.exit_code == 0, result.output
    assert "replayed 1 events" in result.stderr
