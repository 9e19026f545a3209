"""Loading: collector semantics (append, override, enabled), positions of errors, the event-type
index, output templates, exceptions and the public LoadResult."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_fakefields import REGISTRY

from sysward.alert import Priority
from sysward.events.model import Event, Process
from sysward.rules import RulesError, alert_for, load_rules, load_rules_text

BASE = """\
- list: shells
  items: [bash, sh]
- macro: spawned
  condition: evt.type in (execve, execveat)
- rule: Shell
  desc: a shell
  condition: spawned and proc.name in (shells)
  output: shell %proc.name parent=%proc.pname
  priority: WARNING
  tags: [t1]
"""


def load(*texts: str, **kw: object):  # type: ignore[no-untyped-def]
    from sysward.rules.loader import load_texts

    return load_texts([(t, f"f{i}.yaml") for i, t in enumerate(texts)], registry=REGISTRY,
                      **kw)  # type: ignore[arg-type]


def execve(comm: str = "bash", parent: str = "sshd", **kw: object) -> Event:
    p = Process(pid=9, comm=comm, argv=[comm, "-i"], parent=Process(pid=1, comm=parent))
    return Event(ts=1_700_000_000_000_000_000, type="execve", proc=p, **kw)  # type: ignore[arg-type]


def names(res, e: Event) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.name for r in res.ruleset.match(e)]


def test_basic_load_and_match() -> None:
    res = load(BASE)
    assert res.ok and res.rules_loaded == 1 and res.macros == 1 and res.lists == 1
    assert names(res, execve()) == ["Shell"]
    assert names(res, execve("zsh")) == []
    assert names(res, Event(ts=1, type="openat", proc=execve().proc)) == []
    rule = res.ruleset.rules[0]
    assert rule.priority is Priority.WARNING and rule.tags == ["t1"] and rule.action == "alert"
    assert rule.event_types == frozenset({"execve", "execveat"})
    assert res.ruleset.event_types == frozenset({"execve", "execveat"})


def test_list_append_and_lists_inside_lists() -> None:
    res = load(BASE, "- list: more\n  items: [shells, zsh]\n"
                     "- list: shells\n  items: [dash]\n  append: true\n"
                     "- rule: Shell\n  condition: or proc.name in (more)\n  append: true\n")
    assert res.ok, [str(d) for d in res.errors]
    assert names(res, execve("dash")) == ["Shell"]
    # appended condition: "spawned and proc.name in (shells) or proc.name in (more)"
    assert names(res, execve("zsh")) == ["Shell"]


def test_override_append_and_replace() -> None:
    res = load(BASE, """\
- macro: spawned
  condition: evt.type = execve
  override:
    condition: replace
- rule: Shell
  condition: and proc.pname = sshd
  output: user=%user.name
  priority: ERROR
  tags: [t2]
  override:
    condition: append
    output: append
    priority: replace
    tags: append
""")
    assert res.ok, [str(d) for d in res.errors]
    rule = res.ruleset.rules[0]
    assert rule.priority is Priority.ERROR and rule.tags == ["t1", "t2"]
    assert rule.event_types == frozenset({"execve"})
    assert rule.output == "shell %proc.name parent=%proc.pname user=%user.name"
    assert names(res, execve()) == ["Shell"]
    assert names(res, execve(parent="cron")) == []


def test_enabled_false_and_reenable() -> None:
    res = load(BASE, "- rule: Shell\n  enabled: false\n")
    assert res.ok and res.rules_loaded == 0 and res.rules_disabled == 1 and res.rules_total == 1
    res = load(BASE, "- rule: Shell\n  enabled: false\n",
               "- rule: Shell\n  enabled: true\n  override:\n    enabled: replace\n")
    assert res.ok and res.rules_loaded == 1


def test_redefinition_replaces() -> None:
    res = load(BASE, "- rule: Shell\n  desc: x\n  condition: spawned and proc.name = zsh\n"
                     "  output: o\n  priority: info\n")
    assert res.rules_total == 1
    assert names(res, execve("zsh")) == ["Shell"] and names(res, execve("bash")) == []


@pytest.mark.parametrize(("extra", "message"), [
    ("- rule: Nope\n  condition: x\n  append: true\n", "no rule 'Nope' was defined before"),
    ("- list: nope\n  items: [a]\n  append: true\n", "no list 'nope' was defined before"),
    ("- rule: Shell\n  condition: x\n  append: true\n  override:\n    condition: append\n",
     "both 'append' and 'override'"),
    ("- rule: Shell\n  priority: info\n  override:\n    priority: append\n",
     "cannot be overridden"),
    ("- rule: Shell\n  override:\n    output: replace\n", "does not give a new 'output'"),
    ("- rule: R2\n  desc: d\n  condition: spawned\n", "is missing 'output', 'priority'"),
    ("- rule: Nope\n  enabled: false\n", "no rule 'Nope' was defined before"),
    ("- rule: R3\n  desc: d\n  condition: spawned\n  output: o\n  priority: loud\n",
     "unknown priority 'loud'"),
    ("- rule: R3\n  desc: d\n  condition: spawned\n  output: o\n  priority: info\n"
     "  action: explode\n", "unknown action 'explode'"),
    ("- foo: bar\n", None),
])
def test_collector_errors(extra: str, message: str | None) -> None:
    res = load(BASE, extra)
    if message is None:  # unknown item: a warning, not an error
        assert res.ok and any(w.code == "LOAD_UNKNOWN_ITEM" for w in res.warnings)
        return
    assert not res.ok
    assert any(message in str(d) for d in res.errors), [str(d) for d in res.errors]
    assert all(d.file == "f1.yaml" and d.line >= 1 for d in res.errors)


def test_error_positions_point_at_the_offending_text() -> None:
    text = """\
- macro: m
  condition: >
    evt.type = execve and
    proc.nme = sh
- rule: R
  desc: d
  condition: m and proc.name = x
  output: o
  priority: info
- rule: S
  desc: d
  condition: evt.type = open and (proc.name = x or
  output: o
  priority: info
- rule: T
  desc: d
  condition: evt.type = open
  output: "file=%fd.name bad=%fd.nope"
  priority: info
"""
    res = load_rules_text(text, "x.yaml", registry=REGISTRY)
    errs = {d.item: d for d in res.errors}
    assert set(errs) == {"rule 'R'", "rule 'S'", "rule 'T'"}
    r = errs["rule 'R'"]
    assert (r.file, r.line, r.col) == ("x.yaml", 4, 5)
    assert r.snippet.startswith("proc.nme = sh")
    assert "unknown field 'proc.nme'" in r.message and "macro 'm'" in r.message
    assert str(r).startswith("x.yaml:4:5: error LOAD_ERR_COMPILE_CONDITION: unknown field")
    s = errs["rule 'S'"]
    assert (s.line, s.code) == (12, "LOAD_ERR_COMPILE_CONDITION") and "syntax error" in s.message
    t = errs["rule 'T'"]
    assert (t.line, t.col, t.code) == (18, 30, "LOAD_ERR_COMPILE_OUTPUT")
    assert t.snippet == "%fd.nope"


def test_yaml_errors_are_positioned() -> None:
    res = load_rules_text("- rule: x\n  desc: [unclosed\n", "y.yaml", registry=REGISTRY)
    assert not res.ok and res.errors[0].code == "LOAD_ERR_YAML_PARSE"
    assert res.errors[0].file == "y.yaml" and res.errors[0].line >= 2
    res = load_rules_text("rule: x\n", "y.yaml", registry=REGISTRY)
    assert res.errors[0].code == "LOAD_ERR_YAML_VALIDATE"


def test_macro_cycles_and_undefined_names() -> None:
    res = load("- macro: a\n  condition: b\n- macro: b\n  condition: a\n"
               "- rule: R\n  desc: d\n  condition: a\n  output: o\n  priority: info\n")
    assert not res.ok and "refers to itself" in str(res.errors[0])
    res = load(BASE.replace("spawned and", "spawnd and"))
    assert "undefined macro 'spawnd'" in str(res.errors[0])


def test_exceptions_become_and_not() -> None:
    res = load(BASE + """\
  exceptions:
    - name: by_parent
      fields: [proc.name, proc.pname]
      comps: [=, in]
      values:
        - [bash, [cron, systemd]]
    - name: single
      fields: proc.name
      values: [sh]
""")
    assert res.ok, [str(d) for d in res.errors]
    assert names(res, execve("bash", "cron")) == []
    assert names(res, execve("bash", "sshd")) == ["Shell"]
    assert names(res, execve("sh", "sshd")) == []
    # appended exception values join the exception of the same name
    res2 = load(BASE + "  exceptions:\n    - name: e\n      fields: [proc.pname]\n"
                       "      values: [[cron]]\n",
                "- rule: Shell\n  exceptions:\n    - name: e\n      values: [[sshd]]\n"
                "  override:\n    exceptions: append\n")
    assert res2.ok, [str(d) for d in res2.errors]
    assert names(res2, execve("bash", "sshd")) == []
    assert names(res2, execve("bash", "x")) == ["Shell"]
    bad = load(BASE + "  exceptions:\n    - name: e\n      fields: [proc.name, proc.pname]\n"
                      "      values: [[bash]]\n")
    assert not bad.ok and bad.errors[0].code == "LOAD_ERR_EXCEPTION"


def test_event_type_index_and_warning() -> None:
    res = load("""\
- rule: Any
  desc: d
  condition: proc.name = bash
  output: o
  priority: info
- rule: NotOpen
  desc: d
  condition: not evt.type = openat and proc.name = bash
  output: o
  priority: info
- rule: Either
  desc: d
  condition: (evt.type = openat and proc.name = bash) or evt.type in (connect, bind)
  output: o
  priority: info
- rule: Never
  desc: d
  condition: evt.type = openat and evt.type = connect
  output: o
  priority: info
""")
    assert res.ok
    by = {r.name: r for r in res.ruleset.rules}
    assert by["Any"].event_types is None and by["NotOpen"].event_types is None
    assert by["NotOpen"].excluded_types == frozenset({"openat"})
    assert by["Either"].event_types == frozenset({"openat", "connect", "bind"})
    assert by["Never"].event_types == frozenset()
    warned = {w.item for w in res.warnings if w.code == "LOAD_NO_EVTTYPE"}
    assert warned == {"rule 'Any'", "rule 'NotOpen'"}
    rs = res.ruleset
    assert [r.name for r in rs.rules_for_type("openat")] == ["Any", "Either"]
    assert [r.name for r in rs.rules_for_type("read")] == ["Any", "NotOpen"]
    assert [r.name for r in rs.rules_for_type("connect")] == ["Any", "NotOpen", "Either"]
    p = Process(pid=1, comm="bash")
    assert names(res, Event(ts=1, type="read", proc=p)) == ["Any", "NotOpen"]
    assert names(res, Event(ts=1, type="openat", proc=p)) == ["Any", "Either"]
    assert rs.matches_unnamed_types and {"openat", "connect", "bind", "execve"} <= rs.event_types


def test_template_rendering_and_alert() -> None:
    res = load(BASE.replace("output: shell %proc.name parent=%proc.pname",
                            "output: >\n    shell %proc.name (%proc.aname[3]) uid=%user.uid "
                            "%5proc.name| k8s=%k8s.ns.name flags=%evt.arg.flags"))
    assert res.ok, [str(d) for d in res.errors]
    e = execve(uid=0, args={"flags": 513})
    rule = res.ruleset.match(e)[0]
    text, fields = rule.render(e)
    assert text == "shell bash (<NA>) uid=0 bash | k8s=<NA> flags=O_WRONLY|O_TRUNC"
    assert fields == {"proc.name": "bash", "proc.aname[3]": None, "user.uid": 0,
                      "k8s.ns.name": None, "evt.arg.flags": "O_WRONLY|O_TRUNC"}
    alert = alert_for(rule, e, "host1")
    assert alert.rule == "Shell" and alert.hostname == "host1" and alert.output == text
    d = alert.to_falco_dict()
    assert d["priority"] == "Warning" and d["source"] == "syscall" and d["tags"] == ["t1"]


def test_sources_priority_filter_and_extra_keys() -> None:
    res = load(BASE + """\
- rule: Audit
  desc: d
  condition: ka.verb = create
  output: o
  priority: info
  source: k8s_audit
- rule: Kill
  desc: d
  condition: spawned and proc.name = nc
  output: o
  priority: debug
  action: kill
  custom_key: 42
""", min_priority=Priority.INFORMATIONAL)
    assert res.ok
    assert [r for r, _ in res.rules_skipped] == ["Audit", "Kill"]
    assert "k8s_audit" in res.rules_skipped[0][1] and "below the minimum" in res.rules_skipped[1][1]
    res = load(BASE.replace("  tags: [t1]\n", "  tags: [t1]\n  action: kill\n  x: 1\n"))
    rule = res.ruleset.rules[0]
    assert rule.action == "kill" and rule.extra == {"action": "kill", "x": 1}


def test_result_json_and_raise_for_errors() -> None:
    res = load(BASE, "- rule: X\n  desc: d\n  condition: proc.nme = a\n  output: o\n"
                     "  priority: info\n- rule: Y\n  desc: d\n  condition: (\n  output: o\n"
                     "  priority: info\n")
    j = res.to_json()
    assert {"rules_total", "rules_loaded", "rules_disabled", "rules_skipped", "macros", "lists",
            "errors", "warnings"} <= set(j)
    assert j["rules_total"] == 3 and j["rules_loaded"] == 1 and len(j["errors"]) == 2
    assert j["errors"][0]["file"] == "f1.yaml" and j["errors"][0]["line"] == 3
    with pytest.raises(RulesError, match=r"; and 1 more: 'sysward rules check' on the same "
                       r"files lists every one\.$"):
        res.raise_for_errors()
    load(BASE).raise_for_errors()


def test_load_rules_paths(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("- rule: Shell\n  enabled: false\n")
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "notes.txt").write_text("ignored")
    res = load_rules([tmp_path], registry=REGISTRY)
    assert res.files == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    assert res.rules_disabled == 1
    with pytest.raises(RulesError, match="does not exist"):
        load_rules([tmp_path / "missing.yaml"], registry=REGISTRY)


SKIPPABLE = """\
- rule: Uses a field this agent lacks
  desc: d
  condition: evt.type = execve and proc.no_such_field = x
  output: o
  priority: WARNING
  skip-if-unknown-filter: true
- rule: Type error
  desc: d
  condition: evt.type = execve and proc.is_exe_writable > 3
  output: o
  priority: WARNING
  skip-if-unknown-filter: true
"""


def test_skip_if_unknown_filter_skips_unknown_fields_only() -> None:
    """The skip is decided on the error's typed failure (Failure.UNKNOWN_FIELD), not its text:
    a rule with the flag and a type error is still an error."""
    from sysward.rules import fields
    from sysward.rules.codegen import CodeGen, CompileError, Failure
    from sysward.rules.parser import parse

    r = load_rules_text(SKIPPABLE, "s.yaml")
    assert [name for name, _ in r.rules_skipped] == ["Uses a field this agent lacks"]
    assert "unknown field 'proc.no_such_field'" in r.rules_skipped[0][1]
    assert len(r.errors) == 1 and r.errors[0].item == "rule 'Type error'"
    assert "needs a numeric or string field" in r.errors[0].message
    without = load_rules_text(SKIPPABLE.replace("  skip-if-unknown-filter: true\n", ""), "s.yaml")
    assert without.rules_skipped == [] and len(without.errors) == 2
    gen = CodeGen(fields)
    for cond, failure in (("proc.no_such_field = x", Failure.UNKNOWN_FIELD),
                          ("proc.is_exe_writable > 3", Failure.INVALID)):
        with pytest.raises(CompileError) as info:
            gen.check(parse(cond))
        assert info.value.failure is failure
