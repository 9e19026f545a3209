"""Golden tests: every operator and transformer, with cases that must match and must not.

Uses a small stand-in field registry (rules_fakefields) so that the engine's semantics are
tested on their own: missing values, list fields, "any of" fields, type checks.
"""

from __future__ import annotations

from typing import Any

import pytest
from rules_fakefields import REGISTRY

from sysward.events.model import Event, Process
from sysward.rules import load_rules_text


def compile_one(cond: str) -> Any:
    text = f"- rule: R\n  desc: d\n  output: o\n  priority: warning\n  condition: >\n    {cond}\n"
    res = load_rules_text(text, "t.yaml", registry=REGISTRY)
    assert res.ok, [str(d) for d in res.errors]
    assert res.rules_loaded == 1
    return res.ruleset.rules[0]


def ev(**kw: Any) -> Event:
    """An openat of /tmp/a/b by bash (child of sshd, child of init) unless overridden."""
    init = Process(pid=1, comm="init")
    sshd = Process(pid=10, comm="sshd", parent=init)
    proc = kw.pop("proc", Process(pid=100, comm="bash", argv=["bash", "-c", "ls"], user="root",
                                  env=["HOME=/root", "TERM=xterm"], container_id="host",
                                  parent=sshd))
    args = {"name": "/tmp/a/b", "flags": 577}
    args.update(kw.pop("args", {}))
    base: dict[str, Any] = dict(ts=1, type="openat", pid=100, res=3, uid=0, num=7, args=args,
                                proc=proc)
    base.update(kw)
    return Event(**base)


def m(cond: str, event: Event | None = None) -> bool:
    return bool(compile_one(cond).matches(event or ev()))


# (condition, expected) on the default event
GOLDEN = [
    # equality and inequality, string and number
    ("proc.name = bash", True), ("proc.name = sh", False),
    ("proc.name == bash", True), ("proc.name != sh", True), ("proc.name != bash", False),
    ("fd.num = 3", True), ("fd.num = 0x3", True), ("fd.num = 4", False),
    ("fd.num != 4", True), ("user.uid = 0", True),
    # numeric order
    ("fd.num < 4", True), ("fd.num < 3", False), ("fd.num <= 3", True), ("fd.num <= 2", False),
    ("fd.num > 2", True), ("fd.num > 3", False), ("fd.num >= 3", True), ("fd.num >= 4", False),
    ("evt.rawres >= -1", True),
    # substring family
    ("proc.cmdline contains '-c l'", True), ("proc.cmdline contains zsh", False),
    ("proc.cmdline icontains '-C LS'", True), ("proc.cmdline icontains ZSH", False),
    ("fd.name bcontains 2f612f", True), ("fd.name bcontains 2f7a", False),
    ("fd.name startswith /tmp/", True), ("fd.name startswith /etc", False),
    ("fd.name bstartswith 2f746d70", True), ("fd.name bstartswith 2f657463", False),
    ("fd.name endswith /b", True), ("fd.name endswith /c", False),
    # glob (whole string, * crosses /) and iglob
    ("fd.name glob '/tmp/*'", True), ("fd.name glob '/tmp/?/b'", True),
    ("fd.name glob '/tmp'", False), ("fd.name glob '/TMP/*'", False),
    ("fd.name iglob '/TMP/*'", True), ("fd.name iglob '/etc/*'", False),
    # regex: whole-string match, not search
    ("fd.name regex '/tmp/[a-z]/b'", True), ("fd.name regex 'tmp'", False),
    ("fd.name regex '.*tmp.*'", True), ("proc.name regex 'ba(sh|d)'", True),
    # in / intersects on single values
    ("proc.name in (sh, bash)", True), ("proc.name in (sh, zsh)", False),
    ("proc.name in ()", False), ("fd.num in (1, 3)", True), ("fd.num in (1, 2)", False),
    ("proc.name intersects (bash)", True), ("proc.name intersects (zsh)", False),
    # pmatch: path-prefix semantics
    ("fd.name pmatch (/tmp/a)", True), ("fd.name pmatch (/tmp/a/)", True),
    ("fd.name pmatch (/tmp/a/b)", True), ("fd.name pmatch (/tmp)", True),
    ("fd.name pmatch (/tmp/ab, /etc)", False), ("fd.name pmatch (/tmp/a/b/c)", False),
    ("fd.name pmatch (/)", True),
    # exists
    ("proc.name exists", True), ("k8s.ns.name exists", False),
    # booleans
    ("evt.is_open_read = false", True), ("evt.is_open_read = true", False),
    ("evt.is_open_read in (false)", True),
    # IP addresses and networks are tested with a connect event below
    # transformers
    ("tolower(proc.name) = bash", True), ("toupper(proc.name) = BASH", True),
    ("toupper(proc.name) = bash", False), ("basename(fd.name) = b", True),
    ("basename(fd.name) = a", False), ("len(proc.name) = 4", True), ("len(proc.name) > 4", False),
    ("len(fd.name) >= 8", True), ("tolower(toupper(proc.name)) = bash", True),
    # val(): field against field
    ("proc.name = val(proc.name)", True), ("proc.name = val(proc.pname)", False),
    ("proc.name != val(proc.pname)", True), ("fd.num = val(evt.rawres)", True),
    ("fd.num < val(evt.num)", True), ("fd.num > val(evt.num)", False),
    # indexed fields
    ("proc.aname[1] = sshd", True), ("proc.aname[2] = init", True),
    ("proc.aname[3] = init", False), ("evt.arg.flags contains O_TRUNC", True),
    ("evt.arg.flags contains O_APPEND", False), ("evt.arg[name] = /tmp/a/b", True),
    # "any of" fields: proc.aname without an index means any ancestor
    ("proc.aname = sshd", True), ("proc.aname = init", True), ("proc.aname = bash", False),
    ("proc.aname in (foo, init)", True), ("proc.aname startswith ss", True),
    # list-valued fields: in = all elements in the set; intersects = some element
    ("proc.args in (-c, ls)", True), ("proc.args in (-c, ls, x)", True),
    ("proc.args in (-c)", False), ("proc.args intersects (ls, zz)", True),
    ("proc.args intersects (zz)", False), ("proc.args contains l", True),
    ("proc.env intersects ('HOME=/root')", True), ("len(proc.args) = 2", True),
    # logic, precedence (and binds tighter than or), short-circuit
    ("proc.name = bash and fd.num = 3", True), ("proc.name = bash and fd.num = 4", False),
    ("proc.name = sh or fd.num = 3", True), ("proc.name = sh or fd.num = 4", False),
    ("not proc.name = sh", True), ("not proc.name = bash", False),
    ("proc.name = sh and fd.num = 9 or fd.num = 3", True),
    ("proc.name = sh and (fd.num = 9 or fd.num = 3)", False),
    ("not (proc.name = sh or fd.num = 4)", True), ("not not proc.name = bash", True),
    ("not(proc.name = sh)", True),
]


@pytest.mark.parametrize(("cond", "expected"), GOLDEN)
def test_operator_golden(cond: str, expected: bool) -> None:
    assert m(cond) is expected


MISSING = [
    # k8s.ns.name is always missing (None): every comparison is false, so `not` of it is true
    ("k8s.ns.name = x", False), ("k8s.ns.name != x", False), ("not k8s.ns.name = x", True),
    ("not k8s.ns.name != x", True), ("k8s.ns.name in (x, y)", False),
    ("not k8s.ns.name in (x, y)", True), ("k8s.ns.name contains x", False),
    ("k8s.ns.name startswith x", False), ("k8s.ns.name glob '*'", False),
    ("k8s.ns.name regex '.*'", False), ("k8s.ns.name pmatch (/)", False),
    ("k8s.ns.name exists", False), ("not k8s.ns.name exists", True),
    ("tolower(k8s.ns.name) = x", False), ("len(k8s.ns.name) = 0", False),
    ("proc.name = val(k8s.ns.name)", False), ("k8s.ns.name = val(proc.name)", False),
]


@pytest.mark.parametrize(("cond", "expected"), MISSING)
def test_missing_field_semantics(cond: str, expected: bool) -> None:
    assert m(cond) is expected


def test_missing_process_context_is_missing_not_an_error() -> None:
    e = ev(proc=None)
    assert m("proc.name = bash", e) is False
    assert m("not proc.name = bash", e) is True
    assert m("proc.aname = sshd", e) is False
    assert m("proc.args in (x)", e) is False  # no list: not "all of nothing"
    assert m("not proc.args intersects (x)", e) is True


def test_empty_list_field_never_matches_in() -> None:
    p = Process(pid=5, comm="x", argv=["x"])
    assert m("proc.args in (a)", ev(proc=p)) is False
    assert m("proc.args exists", ev(proc=p)) is False


@pytest.mark.parametrize(("cond", "expected"), [
    ("fd.sip = 10.0.0.2", True), ("fd.sip = 10.0.0.3", False),
    ("fd.sip != 10.0.0.3", True), ("fd.sip in (192.168.0.1, 10.0.0.2)", True),
    ("fd.sip in ('10.0.0.0/8')", True), ("fd.sip in ('192.168.0.0/16')", False),
    ("fd.snet = '10.0.0.0/8'", True), ("fd.snet != '127.0.0.0/8'", True),
    ("fd.snet in ('172.16.0.0/12', '10.0.0.0/8')", True),
    ("fd.dip = '::1'", False), ("fd.sip startswith 10.", True), ("fd.sport = 40000", True),
    ("fd.sport in (22, 40000)", True), ("fd.sport > 50000", False),
])
def test_ip_and_port_operators(cond: str, expected: bool) -> None:
    e = ev(type="connect", args={"addr": "127.0.0.1", "saddr": "10.0.0.2", "sport": 40000})
    assert m(cond, e) is expected


@pytest.mark.parametrize(("cond", "message"), [
    ("fd.sip < 3", "needs a numeric or string field"),
    ("fd.num = abc", "is not a number"),
    ("evt.is_open_read = maybe", "is not true or false"),
    ("fd.sip = not-an-ip", "not an IP address"),
    ("fd.num pmatch (/tmp)", "pmatch"),
    ("fd.name bcontains xyz", "hexadecimal"),
    ("fd.name regex '('", "invalid regular expression"),
    ("tolower(fd.num) = 3", "needs a string field"),
    ("proc.name = val(fd.num)", "cannot compare"),
    ("proc.nme = bash", "unknown field 'proc.nme'"),
    ("proc.aname[x] = bash", "needs a number"),
    ("proc.name in undefined_list", "undefined list 'undefined_list'"),
    ("undefined_macro", "undefined macro 'undefined_macro'"),
    # what Falco refuses is refused
    ("fd.name pmatch val(proc.name)", "cannot take val()"),
    ("tolower(evt.type) = open", "evt.type can only be compared with event names"),
    ("evt.type = val(proc.name)", "evt.type can only be compared with event names"),
    ("proc.name = val(evt.type)", "evt.type can only be compared with event names"),
    ("evt.is_open_read contains t", "needs a string field"),
])
def test_type_errors_are_clear(cond: str, message: str) -> None:
    text = f"- rule: R\n  desc: d\n  output: o\n  priority: warning\n  condition: {cond}\n"
    res = load_rules_text(text, "t.yaml", registry=REGISTRY)
    assert res.rules_loaded == 0
    assert len(res.errors) == 1
    assert message in str(res.errors[0]), str(res.errors[0])
    assert res.errors[0].code == "LOAD_ERR_COMPILE_CONDITION"


def test_or_of_same_field_is_merged_but_equivalent() -> None:
    r = compile_one("fd.name startswith /etc or fd.name startswith /tmp or proc.name = zsh "
                    "or proc.name = bash")
    assert r.matches(ev())
    assert not r.matches(ev(args={"name": "/var/x"}, proc=Process(pid=1, comm="sh")))
    assert r.matches(ev(args={"name": "/var/x"}))


def test_ruleset_match_equals_rule_matches() -> None:
    """The per-type combined matcher gives the same answers as each rule alone."""
    conds = ["proc.name = bash and fd.name startswith /tmp", "fd.name startswith /tmp",
             "not proc.name = bash", "proc.aname = sshd and fd.num >= 0",
             "fd.name startswith /tmp and not proc.name in (zsh)", "k8s.ns.name exists"]
    text = "".join(
        f"- rule: R{i}\n  desc: d\n  output: o\n  priority: warning\n"
        f"  condition: evt.type = openat and ({c})\n" for i, c in enumerate(conds))
    res = load_rules_text(text, "t.yaml", registry=REGISTRY)
    assert res.ok
    events = [ev(), ev(proc=Process(pid=3, comm="zsh")), ev(args={"name": "/etc/x"}),
              ev(type="openat", res=-2), ev(proc=None)]
    for e in events:
        expected = [r.name for r in res.ruleset.rules if r.matches(e)]
        assert [r.name for r in res.ruleset.match(e)] == expected


def test_operator_table_covers_every_operator_the_parser_reads() -> None:
    """One table of operator semantics: every binary operator of the grammar has one entry
    (``==`` is ``=``; ``exists`` takes no value), and each string operator's field-to-field
    form is either defined there or refused with a clear error."""
    from sysward.rules import parser
    from sysward.rules.codegen import OPERATORS

    grammar = set(parser._SYMBOL_OPS) | set(parser._WORD_OPS)
    assert grammar - {"==", "exists"} == set(OPERATORS)
    for name, op in OPERATORS.items():
        assert "{v}" in op.const_test and "{c}" in op.const_test, name
        assert op.val_test is None or ("{v}" in op.val_test and "{w}" in op.val_test), name


# --- Falco's semantics where they differ from the obvious reading --------------------------

@pytest.mark.parametrize(("cond", "expected"), [
    ("fd.name pmatch (/tmp/*)", True), ("fd.name pmatch (/tmp/?/b)", True),
    ("fd.name pmatch (/tmp/[a]/b)", True), ("fd.name pmatch (/tmp/*/*)", True),
    ("fd.name pmatch (/t*)", True), ("fd.name pmatch (/tmp/*/c)", False),
    ("fd.name pmatch (/etc/*, /var/*)", False), ("fd.name pmatch (/tmp/[b]/b)", False),
    ("fd.name pmatch (/tmp/*/*/*)", False), ("fd.name pmatch (/etc, /tmp/?)", True),
])
def test_pmatch_takes_wildcards_per_component(cond: str, expected: bool) -> None:
    assert m(cond) is expected  # the default event opens /tmp/a/b


@pytest.mark.parametrize(("cond", "expected"), [
    ("proc.name < c", "bash" < "c"), ("proc.name >= bash", True), ("proc.name > bash", False),
    ("fd.name < 1", "/tmp/a/b" < "1"), ("fd.name <= /tmp/a/b", True),
    ("proc.name < val(proc.pname)", "bash" < "sshd"),
])
def test_strings_are_ordered_as_in_falco(cond: str, expected: bool) -> None:
    assert m(cond) is expected
