"""Transformers of several arguments: concat(), join(), getopt() (parsing, types, values)."""

from __future__ import annotations

import pytest

from sysward.events.model import Event, Process
from sysward.rules import load_rules_text
from sysward.rules.ast import Call, to_text
from sysward.rules.codegen.values import getopt
from sysward.rules.parser import ParseError, parse


def _load(cond: str) -> object:
    text = f"- rule: R\n  desc: d\n  output: o\n  priority: warning\n  condition: {cond}\n"
    return load_rules_text(text, "t.yaml")


def matches(cond: str, event: Event) -> bool:
    res = _load(cond)
    assert res.ok, [str(d) for d in res.errors]  # type: ignore[attr-defined]
    return bool(res.ruleset.rules[0].matches(event))  # type: ignore[attr-defined]


def nc() -> Event:
    e = Event(ts=1, type="connect", pid=9, res=0,
              args={"fd": 3, "family": 2, "addr": "8.8.8.8", "port": 53, "saddr": "10.0.0.2",
                    "sport": 40000, "sotype": 2, "proto": 17})
    e.proc = Process(pid=9, comm="nc", argv=["nc", "-lvp", "4444", "-e", "/bin/sh", "10.1.1.1"])
    return e


@pytest.mark.parametrize(("cond", "expected"), [
    ('concat(fd.rip, ":", fd.rport) in ("8.8.8.8:53", "4.4.4.4:53")', True),
    ('concat(fd.rip, ":", fd.rport) = "8.8.8.8:54"', False),
    ("concat(proc.name, '-', proc.pid) = nc-9", True),
    ("tolower(concat(proc.name, X)) = ncx", True),
    ("concat(proc.name, k8s.ns.name) exists", False),  # a missing field: missing result
    ('join(fd.port, ",") = "40000,53"', True),
    ('getopt(proc.args, "e:lvp:")[e] = /bin/sh', True),
    ('getopt(proc.args, "e:lvp:")[p] = 4444', True),
    ('getopt(proc.args, "lvp:")[v] = ""', True),           # a flag: present, no argument
    ('getopt(proc.args, "lvp:")[e] exists', False),        # not in the option string
    ('getopt(proc.args, "e:lvp:") intersects (e, c)', True),
    ('getopt(proc.args, "lvp:") intersects (e)', False),
])
def test_values(cond: str, expected: bool) -> None:
    assert matches(f"evt.type = connect and {cond}", nc()) is expected


@pytest.mark.parametrize(("words", "optstring", "found"), [
    (["-lvp", "4444"], "lvp:", {"l": "", "v": "", "p": "4444"}),
    (["-p8080", "-x"], "p:", {"p": "8080"}),
    (["host", "-e", "/bin/sh"], "e:", {"e": "/bin/sh"}),    # GNU: options after operands
    (["--", "-e", "x"], "e:", {}),                           # "--" ends the options
    (["-e"], "e:", {}),                                      # missing argument: not found
    (["--long", "-", "-q"], "q", {"q": ""}),
])
def test_getopt_follows_getopt3(words: list[str], optstring: str, found: dict[str, str]) -> None:
    assert getopt(words, optstring) == found
    assert getopt(" ".join(words), optstring) == found
    assert getopt(None, optstring) is None


@pytest.mark.parametrize("cond", [
    'concat(fd.rip, ":", fd.rport) = x', 'join(proc.aname, "->") = x',
    'getopt(proc.args, "e:")[e] = /bin/sh', 'getopt(proc.args, "e:") intersects (e)',
])
def test_text_form_reads_back(cond: str) -> None:
    tree = parse(cond)
    assert parse(to_text(tree)) == tree
    assert isinstance(tree.lhs, Call)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("cond", "message"), [
    ("concat(proc.name) = x", "two or more items"),
    ("concat(a, b) = x", "at least one a field"),
    ("join(proc.args) = x", "a list field and a separator"),
    ("getopt(x, proc.args) = x", "an argument list field"),
    ('concat(proc.name, "x" = y', "expected ',' or ')'"),
])
def test_malformed_calls_are_parse_errors(cond: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(cond)
    assert message in info.value.message


@pytest.mark.parametrize(("cond", "message"), [
    ('join(proc.name, ",") = x', "join() needs a list field"),
    ('getopt(proc.pid, "e:") intersects (e)', "getopt() needs a list or string field"),
    ('concat(fd.ip, "x") = y', "cannot take the list or 'any of' field"),
])
def test_wrong_field_kinds_are_refused(cond: str, message: str) -> None:
    res = _load(f"evt.type = connect and {cond}")
    errors = res.errors  # type: ignore[attr-defined]
    assert errors and message in errors[0].message, [str(d) for d in errors]
