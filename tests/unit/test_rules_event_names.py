"""evt.type values: a misspelling warns with a suggestion; uncaptured types are listed per rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from sysward.rules import load_rules_text
from sysward.rules.event_names import exists, suggestion

RULES = """
- rule: Misspelt
  desc: d
  condition: evt.type = execv and proc.name = sh
  output: o
  priority: warning
- rule: Sends
  desc: d
  condition: evt.type in (sendto, connect) and fd.sport = 4
  output: o
  priority: warning
"""


def test_vocabulary_tells_misspellings_from_uncaptured_events() -> None:
    assert exists("execve") and exists("sendto") and exists("procexit")
    assert not exists("execv")
    assert suggestion("execv") == "execve"
    assert suggestion("opnat") == "openat"
    assert suggestion("qqqqqq") is None


def test_misspelt_type_is_a_warning_with_a_suggestion() -> None:
    res = load_rules_text(RULES, "t.yaml")
    assert res.ok
    warned = [d for d in res.warnings if d.code == "LOAD_UNKNOWN_EVTTYPE"]
    assert len(warned) == 1
    assert "'execv'" in warned[0].message and "did you mean 'execve'" in warned[0].message
    assert res.rule_types["Sends"] == (frozenset({"sendto", "connect"}), frozenset({"sendto"}))
    assert res.uncaptured == {"sendto": 1}


def _check(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "sysward", "rules", "check", *args],
                          capture_output=True, text=True, check=True)
    return proc.stdout


def test_rules_check_reports_them(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(RULES)
    out = _check(str(f))
    assert "did you mean 'execve'" in out
    assert "does not capture" in out and "sendto (1 rule)" in out
    js = orjson.loads(_check("--json", str(f)))
    per_rule = {r["rule"]: r for r in js["rules"]}
    assert per_rule["Sends"]["uncaptured_event_types"] == ["sendto"]
    assert per_rule["Misspelt"]["event_types"] == ["execv"]
    assert js["uncaptured_event_types"] == {"sendto": 1}
