"""Falco's semantics on the real field registry, where they differ from the obvious reading."""

from __future__ import annotations

from typing import Any

import pytest

from sysward.events.model import Event, Process
from sysward.rules import load_rules_text


def matches(cond: str, event: Event) -> bool:
    text = f"- rule: R\n  desc: d\n  output: o\n  priority: warning\n  condition: {cond}\n"
    res = load_rules_text(text, "t.yaml")
    assert res.ok, [str(d) for d in res.errors]
    return bool(res.ruleset.rules[0].matches(event))


def connect(**args: Any) -> Event:
    base = {"fd": 3, "family": 2, "addr": "127.0.0.1", "port": 443, "saddr": "10.0.0.2",
            "sport": 40000, "sotype": 1, "proto": 6}
    base.update(args)
    e = Event(ts=1, type="connect", pid=9, res=0, args=base)
    e.proc = Process(pid=9, comm="curl", argv=["curl"])
    return e


@pytest.mark.parametrize(("cond", "expected"), [
    ("fd.ip != 127.0.0.1", False), ("fd.ip != 10.0.0.2", False), ("fd.ip != 1.1.1.1", True),
    ("fd.ip = 127.0.0.1", True), ("fd.ip in (1.1.1.1, 10.0.0.2)", True),
    ("fd.net != '10.0.0.0/8'", False), ("fd.net != '192.168.0.0/16'", True),
    ("fd.port != 40000", False), ("fd.port != 443", False), ("fd.port != 22", True),
    ("fd.port = 40000", True),
    ("not fd.port = 443", False), ("fd.port != 443 and fd.port != 40000", False),
])
def test_either_end_inequality_means_neither_end(cond: str, expected: bool) -> None:
    assert matches(f"evt.type = connect and {cond}", connect()) is expected


@pytest.mark.parametrize("cond", ["fd.ip != 1.1.1.1", "fd.port != 1", "fd.net != '1.0.0.0/8'"])
def test_without_a_socket_either_end_fields_are_missing(cond: str) -> None:
    e = Event(ts=1, type="setuid", pid=9, res=0, args={"uid": 0})
    assert matches(cond, e) is False


def _warnings(cond: str) -> list[str]:
    text = f"- rule: R\n  desc: d\n  output: o\n  priority: warning\n  condition: {cond}\n"
    res = load_rules_text(text, "t.yaml")
    assert res.ok and res.rules_loaded == 1  # still loads: the lenient forms keep working
    return [d.message for d in res.warnings if d.code == "LOAD_FALCO_INCOMPATIBLE"]


@pytest.mark.parametrize(("cond", "word"), [
    ("evt.type = connect and fd.sip startswith '10.'", "Falco refuses 'startswith'"),
    ("evt.type = connect and fd.sport contains 44", "Falco refuses 'contains'"),
    ("evt.type = openat and evt.rawarg.flags contains 64", "Falco refuses 'contains'"),
    ("evt.type = openat and fd.name bcontains 2f746d70", "byte-buffer fields only"),
])
def test_lenient_forms_warn_that_falco_refuses_them(cond: str, word: str) -> None:
    found = _warnings(cond)
    assert len(found) == 1 and word in found[0], found


@pytest.mark.parametrize("cond", [
    "evt.type = connect and fd.sip = 10.0.0.2", "evt.type = openat and fd.name contains tmp",
    "evt.type = openat and evt.arg.flags contains O_CREAT",
])
def test_falco_compatible_forms_do_not_warn(cond: str) -> None:
    assert _warnings(cond) == []


def test_lenient_forms_still_match() -> None:
    assert matches("evt.type = connect and fd.sip startswith '127.'", connect())
    assert not matches("evt.type = connect and fd.sip startswith '10.'", connect())
