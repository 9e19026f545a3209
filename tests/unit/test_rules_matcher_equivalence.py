"""The generated per-type matchers decide exactly what the rules decide one by one.

A per-type matcher is one function for all the rules of an event type: fields extracted
once, leading tests shared by several rules nested once, the fields of the tests at its
top computed first.  Each rule also has its own predicate, compiled alone from the same
specialised tree with none of that sharing.  For every event of the bench's synthetic stream
(and a set of events built to pass the shared leading tests), the matcher must return the
same rules, in load order, as the rule-by-rule evaluation; and it must never raise (a raise
would be hidden by the careful fallback).  Falco's three files are read from ../shared.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from sysward.agent.engine import DEFAULT_RULES_DIR
from sysward.bench.rules_bench import synthetic_pool
from sysward.events.model import Event
from sysward.rules import load_rules

FALCO = Path(__file__).parents[2] / ".." / "shared" / "falco-rules"
FALCO_FILES = sorted(FALCO.glob("falco*_rules.yaml"))


def _rule_sets() -> list[Any]:
    out = [pytest.param([DEFAULT_RULES_DIR], id="sysward")]
    if FALCO_FILES:
        out.append(pytest.param(FALCO_FILES, id="falco-three-files"))
    return out


def _variants(ev: Event) -> list[Event]:
    """The event, and copies whose path, flags, result and comm take the values the shared
    leading tests of Falco's file rules look for (writes below /etc, /root, binary dirs...)."""
    out = [ev]
    if "name" in ev.args:
        for name, flags in (("/etc/cron.d/job", 0o101), ("/root/.ssh/authorized_keys", 0o1),
                            ("/usr/bin/ls", 0o1101), ("/var/log/syslog", 0o1001),
                            ("/etc/shadow", 0), ("/dev/sda", 0o2), ("/home/u/.bashrc", 0o1),
                            ("/proc/1/environ", 0), ("/etc/../etc/passwd", 0)):
            for res in (3, -13):
                for comm in (ev.comm, "sshd", "tar", "python3"):
                    copy = dataclasses.replace(ev, args={**ev.args, "name": name,
                                                         "flags": flags}, res=res, comm=comm)
                    copy.proc = ev.proc
                    out.append(copy)
    return out


@pytest.mark.parametrize("paths", _rule_sets())
def test_matcher_equals_rule_by_rule(paths: list[Any]) -> None:
    ruleset = load_rules([str(p) for p in paths]).ruleset
    seen_types: set[str] = set()
    fired = 0
    for base in synthetic_pool(4000):
        for ev in _variants(base):
            matcher = ruleset._matchers.get(ev.type, ruleset._other_matcher)
            got = matcher(ev)  # raises on a broken generated source
            want = [r for r, fn in ruleset._by_type.get(ev.type, ruleset._other) if fn(ev)]
            assert [r.name for r in got] == [r.name for r in want], (ev.type, ev.args, ev.comm)
            seen_types.add(ev.type)
            fired += bool(got)
    assert fired > 100 and len(seen_types) > 10
