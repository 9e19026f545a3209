"""Falco's upstream rule files (read from ../shared, never copied) load with the real field
registry, and ``sysward rules check`` reports on them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sysward.cli import cli
from sysward.events.model import Event, Process
from sysward.rules import load_rules

FALCO = Path(__file__).parents[2] / ".." / "shared" / "falco-rules"
FILES = [FALCO / "falco_rules.yaml", FALCO / "falco-incubating_rules.yaml",
         FALCO / "falco-sandbox_rules.yaml"]

pytestmark = pytest.mark.skipif(not FILES[0].exists(), reason=f"{FALCO} is not available")


@pytest.fixture(scope="module")
def all_three():  # type: ignore[no-untyped-def]
    return load_rules(FILES)


def test_all_three_files_load_completely(all_three) -> None:  # type: ignore[no-untyped-def]
    res = all_three
    assert res.errors == [], "\n".join(str(d) for d in res.errors)
    assert res.rules_total == 25 + 31 + 37
    assert res.rules_disabled == 12
    assert res.rules_skipped == []
    assert res.rules_loaded == res.rules_total - res.rules_disabled  # 100 % of enabled rules
    assert res.macros > 250 and res.lists > 100
    # every rule restricts evt.type, so the agent attaches a bounded set of tracepoints
    assert not res.ruleset.matches_unnamed_types
    assert {"execve", "openat", "connect"} <= res.ruleset.event_types


@pytest.mark.parametrize(("index", "loaded"), [(0, 25), (1, 31), (2, 25)])
def test_each_file_loads_alone(index: int, loaded: int) -> None:
    res = load_rules([FILES[index]])
    assert res.ok and res.rules_loaded == loaded, [str(d) for d in res.errors]


def test_undefined_macro_is_named_with_its_position(tmp_path: Path) -> None:
    # inside a folded block (condition: >), so the position must map through YAML's folding
    text = FILES[0].read_text().replace("\n    spawned_process\n", "\n    spawnd_process\n", 1)
    assert "spawnd_process" in text
    broken = tmp_path / "falco_rules.yaml"
    broken.write_text(text)
    res = load_rules([broken])
    assert len(res.errors) == 1
    err = res.errors[0]
    assert "undefined macro 'spawnd_process'" in err.message and err.snippet.startswith("spawnd")
    line = text.splitlines()[err.line - 1]
    assert line[err.col - 1:].startswith("spawnd_process")


def test_a_falco_rule_fires(all_three) -> None:  # type: ignore[no-untyped-def]
    sshd = Process(pid=10, comm="sshd", exepath="/usr/sbin/sshd", argv=["/usr/sbin/sshd"])
    cat = Process(pid=20, ppid=10, comm="cat", exepath="/usr/bin/cat",
                  argv=["cat", "/etc/shadow"], parent=sshd, user="root")
    e = Event(ts=1, num=5, type="openat", pid=20, tid=20, res=3, comm="cat",
              args={"name": "/etc/shadow", "flags": 0, "mode": 0, "dirfd": -100}, proc=cat)
    fired = [r.name for r in all_three.ruleset.match(e)]
    assert "Read sensitive file untrusted" in fired
    miss = Event(ts=1, num=6, type="openat", pid=20, tid=20, res=3, comm="cat",
                 args={"name": "/etc/hostname", "flags": 0, "mode": 0, "dirfd": -100}, proc=cat)
    assert "Read sensitive file untrusted" not in [r.name for r in all_three.ruleset.match(miss)]


def test_matching_speed_figure(all_three) -> None:  # type: ignore[no-untyped-def]
    """Not a timed assertion of the target (that is `sysward bench rules`): a sanity floor."""
    cat = Process(pid=20, comm="cat", exepath="/usr/bin/cat", argv=["cat", "x"])
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("openat", {"name": "/tmp/x", "flags": 577}),
        ("openat", {"name": "/etc/hosts", "flags": 0}),
        ("execve", {"filename": "/usr/bin/cat", "argv": ["cat"]}), ("close", {}),
    ]
    events = [Event(ts=i, type=t, res=3, args=a, proc=cat) for i, (t, a) in enumerate(kinds)] * 500
    match = all_three.ruleset.match
    t = time.perf_counter()
    for e in events:
        match(e)
    rate = len(events) / (time.perf_counter() - t)
    assert rate > 5_000


def test_rules_check_cli_ok_and_json() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["rules", "check", *map(str, FILES)])
    assert out.exit_code == 0, out.output
    assert "81 loaded, 12 disabled" in out.output
    out = runner.invoke(cli, ["rules", "check", "--json", str(FILES[0])])
    assert out.exit_code == 0
    data = json.loads(out.output)
    assert data["rules_loaded"] == 25 and data["errors"] == [] and data["rules_skipped"] == []


def test_rules_check_cli_reports_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- rule: R\n  desc: d\n  condition: evt.type = open and proc.nme = x\n"
                   "  output: o\n  priority: info\n"
                   "- rule: K\n  desc: d\n  condition: ka.verb = x\n  output: o\n"
                   "  priority: info\n  source: k8s_audit\n")
    out = CliRunner().invoke(cli, ["rules", "check", str(bad)])
    assert out.exit_code == 1
    assert f"{bad}:3:34: error LOAD_ERR_COMPILE_CONDITION: unknown field 'proc.nme'" in out.output
    assert "skipped rule 'K': source 'k8s_audit'" in out.output
    out = CliRunner().invoke(cli, ["rules", "check", "--json", str(bad)])
    assert out.exit_code == 1
    data = json.loads(out.output)
    assert data["errors"][0]["line"] == 3 and data["rules_skipped"][0]["rule"] == "K"
