"""sysward's own default rules (src/sysward/rules.d/): they load cleanly, are tagged, and each
one fires on its replayed event and stays quiet on its near miss.

The cases live in own_rules_cases.yaml next to this file; every rule must have at least one
`fire` and one `miss` event there, so a new rule without tests fails the suite.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from sysward.events.model import Event

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "src" / "sysward" / "rules.d"
CASES_FILE = Path(__file__).with_name("own_rules_cases.yaml")
CATALOGUE_SCRIPT = REPO / "scripts" / "rules_catalogue.py"
RULES_DOC = REPO / "docs" / "rules.md"

TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
TACTICS = {
    "mitre_reconnaissance", "mitre_resource_development", "mitre_initial_access",
    "mitre_execution", "mitre_persistence", "mitre_privilege_escalation",
    "mitre_defense_evasion", "mitre_credential_access", "mitre_discovery",
    "mitre_lateral_movement", "mitre_collection", "mitre_command_and_control",
    "mitre_exfiltration", "mitre_impact",
}
# Header keys copied from the process context so header and `proc` always agree.
_FROM_PROC = ("pid", "ppid", "uid", "gid", "euid", "egid", "loginuid", "comm", "tty",
              "pidns", "mntns", "start_time")


@cache
def _load() -> Any:
    from sysward.rules import load_rules

    return load_rules([RULES_DIR])


@cache
def _cases() -> dict[str, Any]:
    data = yaml.safe_load(CASES_FILE.read_text())
    assert isinstance(data, dict)
    return data


def _rules_by_name() -> dict[str, Any]:
    return {r.name: r for r in _load().ruleset.rules}


def _merge_proc(spec: dict[str, Any]) -> dict[str, Any]:
    data = _cases()
    proc: dict[str, Any] = copy.deepcopy(data["default_proc"])
    spec = dict(spec)
    use = spec.pop("use", None)
    for layer in ([data["procs"][use]] if use else []) + [spec]:
        for key, value in layer.items():
            proc[key] = copy.deepcopy(value)
    return proc


def build_event(spec: dict[str, Any], num: int = 1) -> Event:
    proc = _merge_proc(spec.get("proc") or {})
    header: dict[str, Any] = {k: proc[k] for k in _FROM_PROC if k in proc}
    header["tid"] = proc["pid"]
    ts = 1_700_000_000_000_000_000 + int(float(spec.get("at", 0)) * 1e9) + num
    header.update(ts=ts, num=num, type=spec["type"],
                  res=spec.get("res", 0), args=copy.deepcopy(spec.get("args") or {}))
    header["proc"] = proc
    ev = Event.from_dict(header)
    assert ev.proc is not None and ev.proc.pid == proc["pid"]
    return ev


def _case_params(kind: str) -> list[Any]:
    params = []
    for rule, case in _cases()["cases"].items():
        for i, spec in enumerate(case.get(kind) or []):
            params.append(pytest.param(rule, spec, id=f"{rule}-{kind}{i}"))
    return params


# ------------------------------------------------------------------ loading


def test_rules_dir_loads_without_errors_or_warnings() -> None:
    res = _load()
    assert [str(d) for d in res.errors] == []
    assert [str(d) for d in res.warnings] == []
    assert res.ok
    assert res.rules_skipped == []


def test_at_least_40_rules_enabled() -> None:
    res = _load()
    assert res.rules_loaded >= 40, res.rules_loaded
    assert len(res.ruleset.rules) >= 40


def test_every_rule_is_described_and_tagged_with_mitre() -> None:
    for rule in _load().ruleset.rules:
        assert rule.desc.strip(), rule.name
        assert rule.output.strip(), rule.name
        assert any(TECHNIQUE.match(t) for t in rule.tags), f"{rule.name}: no technique tag"
        assert TACTICS & set(rule.tags), f"{rule.name}: no mitre_* tactic tag"
        assert {"host", "container"} & set(rule.tags), f"{rule.name}: no host/container tag"


def test_every_rule_is_indexed_by_event_type() -> None:
    # A rule without event types would be checked against every event: costly and noisy.
    for rule in _load().ruleset.rules:
        assert rule.event_types, f"{rule.name} matches every event type"


def test_every_rule_has_a_firing_case_and_a_near_miss() -> None:
    cases = _cases()["cases"]
    names = set(_rules_by_name())
    assert set(cases) - names == set(), "cases for rules that do not exist"
    for name in sorted(names):
        assert name in cases, f"no replay case for rule {name!r}"
        assert cases[name].get("fire"), f"{name}: no firing event"
        assert cases[name].get("miss"), f"{name}: no near miss"


# ------------------------------------------------------------------ replay


def _replay(spec: dict[str, Any]) -> list[tuple[Event, list[str]]]:
    """Events of a case, each with the rules that fired on it.  A case is one event, or
    ``{sequence: [event, ...]}`` for correlation rules (``at:`` seconds move an event in
    time); correlation state starts empty for every case."""
    ruleset = _load().ruleset
    ruleset.reset_correlations()
    specs = spec.get("sequence", [spec])
    out = []
    for i, one in enumerate(specs, 1):
        ev = build_event(one, i)
        out.append((ev, [r.name for r in ruleset.match(ev)]))
    return out


@pytest.mark.parametrize(("rule_name", "spec"), _case_params("fire"))
def test_rule_fires(rule_name: str, spec: dict[str, Any]) -> None:
    rule = _rules_by_name()[rule_name]
    replayed = _replay(spec)
    ev, fired = replayed[-1]
    assert rule_name in fired, f"{rule_name} did not fire on {spec}"
    if rule.correlation is not None:  # it fires when the events add up, not before
        assert all(rule_name not in f for _, f in replayed[:-1]), spec
    text, fields = rule.render(ev)
    assert text and "<NA>" not in text.split("(", 1)[0]


@pytest.mark.parametrize(("rule_name", "spec"), _case_params("miss"))
def test_rule_near_miss_is_quiet(rule_name: str, spec: dict[str, Any]) -> None:
    for _, fired in _replay(spec):
        assert rule_name not in fired, f"{rule_name} fired on near miss {spec}"


def test_alert_for_own_rule_has_falco_shape() -> None:
    from sysward.rules import alert_for

    spec = _cases()["cases"]["Shadow File Opened by Unexpected Program"]["fire"][0]
    ev = build_event(spec)
    (rule,) = [r for r in _load().ruleset.match(ev)
               if r.name == "Shadow File Opened by Unexpected Program"]
    alert = alert_for(rule, ev, "testhost")
    assert alert.rule == rule.name
    assert "/etc/shadow" in alert.output
    assert "T1003.008" in alert.tags


# ------------------------------------------------------------------ catalogue


def _catalogue_module() -> Any:
    spec = importlib.util.spec_from_file_location("rules_catalogue", CATALOGUE_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rules_doc_is_current() -> None:
    expected = _catalogue_module().render(RULES_DIR)
    assert RULES_DOC.read_text() == expected, (
        "docs/rules.md is stale: run 'python scripts/rules_catalogue.py --write'")


def test_rules_doc_lists_every_rule() -> None:
    doc = RULES_DOC.read_text()
    for name in _rules_by_name():
        assert f"| {name} |" in doc, name


def test_every_rule_has_a_false_positive_note() -> None:
    notes = _catalogue_module().load_notes(REPO / "docs" / "rules-false-positives.yaml")
    names = set(_rules_by_name())
    assert set(notes) - names == set(), "notes for rules that do not exist"
    assert names - set(notes) == set(), "rules without a known-false-positives note"
