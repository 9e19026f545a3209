"""The generated output renderer gives exactly what the plain loop over the template gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from sysward.bench.rules_bench import synthetic_pool
from sysward.events.model import Event, Process
from sysward.rules import fields, load_rules
from sysward.rules.packaged import PACKAGED_RULES_DIR
from sysward.rules.template import compile_template

FALCO = Path(__file__).resolve().parents[2] / ".." / "shared" / "falco-rules"


@pytest.mark.parametrize("where", ["packaged", "falco"])
def test_every_rule_renders_alike_on_the_synthetic_stream(where: str) -> None:
    if where == "falco" and not FALCO.is_dir():
        pytest.skip(f"{FALCO} is not there (the shared material is read, never copied)")
    res = load_rules([str(PACKAGED_RULES_DIR if where == "packaged" else FALCO)])
    assert res.ok
    events = synthetic_pool(3000)
    checked = 0
    for rule in res.ruleset.rules:
        template = rule._template
        assert template is not None
        for e in events[: 3000 // max(1, len(res.ruleset.rules)) + 20]:
            assert template.render(e) == template.render_by_parts(e), rule.name
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize("text", [
    "plain text only",
    "%proc.name",
    "{braces} and 'quotes' \\\\ and \"doubles\" %proc.name {x}",
    "%proc.name %proc.name twice, %8proc.name padded, %2proc.cmdline cut",
    "missing %k8s.ns.name and %proc.aname[9] and %fd.sip",
    "num %proc.pid bool %evt.is_open_read flags %evt.arg.flags ip %fd.rip",
])
def test_templates_with_edges_render_alike(text: str) -> None:
    t = compile_template(text, fields)
    p = Process(pid=5, comm="bash", argv=["bash", "-c", "id"], parent=Process(pid=1, comm="i"))
    for e in (Event(ts=1, type="openat", pid=5, res=3, args={"name": "/etc/x", "flags": 65}),
              Event(ts=1, type="connect", pid=5, res=0,
                    args={"fd": 3, "family": 2, "addr": "1.2.3.4", "port": 80})):
        e.proc = p
        got = t.render(e)
        assert got == t.render_by_parts(e)
    assert "<NA>" in t.render(Event(ts=1, type="openat", pid=5))[0] or "%" not in text


def test_alert_for_skips_the_printable_walk_only_when_it_changes_nothing() -> None:
    """``alert_for`` leaves an ASCII line's values alone; anything else is made printable."""
    from sysward.events.text import printable, printable_tree
    from sysward.rules.ruleset import alert_for

    res = load_rules([str(PACKAGED_RULES_DIR)])
    assert res.ok
    events = synthetic_pool(2000)
    odd = []
    for e in events[:200]:  # the same events with a byte that is not UTF-8 in their strings
        if e.proc is not None and e.proc.argv:
            e2 = Event(ts=e.ts, type=e.type, pid=e.pid, res=e.res, comm=e.comm,
                       args={k: (v + "\udcff" if isinstance(v, str) else v)
                             for k, v in e.args.items()})
            e2.proc = e.proc
            odd.append(e2)
    checked = 0
    for e in events + odd:
        for rule in res.ruleset.match(e):
            text, values = rule.render(e)
            alert = alert_for(rule, e, "h")
            assert alert.output == printable(text)
            assert alert.output_fields == printable_tree(values)
            alert.output.encode()  # valid UTF-8
            alert.to_json()
            checked += 1
    assert checked > 100


def test_plain_numbers_render_alike_through_the_fast_path() -> None:
    t = compile_template("pid %proc.pid uid %user.uid res %evt.res", fields)
    for pid, res in ((5, 0), (-1, -13), (2**40, 3)):
        e = Event(ts=1, type="openat", pid=pid, res=res, args={"name": "/x"})
        e.proc = Process(pid=pid, comm="x")
        assert t.render(e) == t.render_by_parts(e)
    assert t.line_has_values and not compile_template("%8proc.name", fields).line_has_values
