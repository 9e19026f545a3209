"""Fields written out per event type (FieldDef.inline) give exactly the generic values.

The rule compiler pastes a field's inline source into the matcher of one event type instead
of calling its extractor; a mistake there would change what rules match without any error.
So every field that has inline source is compared with its own extractor on events of every
event type sysward knows, with odd argument values (missing, empty, unnormalised paths,
directory flags, no process context, host and container processes).
"""

from __future__ import annotations

from typing import Any

import pytest

from sysward.events.model import Event, Process
from sysward.rules import fields
from sysward.rules.ast import FieldRef
from sysward.rules.codegen import CodeGen
from sysward.rules.fields import all_fields, resolve
from sysward.rules.index import KNOWN_EVENT_TYPES

INLINE_FIELDS = [f for f in all_fields() if f.inline is not None]
# fields with an index take these arguments in conditions
_ARGS: dict[str, list[str | None]] = {
    "proc.aname": ["0", "1", "2", "3", "4"],
    "evt.arg": ["flags", "name", "mode", "uid", "fd", "res", "type", "argv", "core", "1"],
}


def _procs() -> list[Process | None]:
    root = Process(pid=1, comm="systemd")
    parent = Process(pid=10, comm="", parent=root)
    return [
        None,
        Process(pid=100, comm="nginx", argv=["nginx", "-g"], parent=root),
        Process(pid=101, comm="", container_id="", parent=None),
        Process(pid=102, comm="sh", container_id="0123456789ab", parent=parent),
    ]


_ARGSETS: list[dict[str, Any]] = [
    {},
    {"name": "/etc/passwd", "flags": 0, "fd": 4, "fd_type": "p"},
    {"name": "", "flags": 1},
    {"name": "/a//b/./c/../d", "flags": 0o200000 | 2},  # O_DIRECTORY
    {"name": "/tmp/x", "flags": 0o20200000 | 2},  # O_TMPFILE
    {"name": "rel/path", "flags": 0o101},
    {"name": "/", "flags": 2, "fd_type": ""},
    {"name": "/dev/null", "flags": None, "fd": -1},
    {"uid": 0, "mode": 0o755, "argv": ["sh", "-c"], "core": True, "type": 2, "flags": 0x80},
    {"family": 2, "addr": "10.0.0.1", "port": 443, "saddr": "10.0.0.2", "sport": 5000,
     "fd_type": "4", "domain": 2, "type": 1, "fd": 3},
]


def _events(evt_type: str) -> list[Event]:
    out = []
    for i, args in enumerate(_ARGSETS):
        for j, proc in enumerate(_procs()):
            for comm in ("bash", ""):
                ev = Event(ts=1, type=evt_type, pid=5, comm=comm, res=(3, -2, 0)[(i + j) % 3],
                           args=dict(args), num=i * 10 + j)
                ev.proc = proc
                out.append(ev)
    return out


def _outcome(fn: Any, ev: Event) -> tuple[str, Any]:
    try:
        value = fn(ev)
    except Exception as exc:  # noqa: BLE001 - both sides must fail alike
        return "raises", type(exc).__name__
    return type(value).__name__, value


def test_some_fields_have_inline_source() -> None:
    names = {f.name for f in INLINE_FIELDS}
    assert {"fd.name", "fd.typechar", "evt.is_open_read", "proc.name"} <= names


@pytest.mark.parametrize("fdef", INLINE_FIELDS, ids=lambda f: f.name)
def test_inline_source_equals_extractor_on_every_event_type(fdef: Any) -> None:
    gen = CodeGen(fields)
    checked = 0
    for arg in _ARGS.get(fdef.name, [None]):
        bound = resolve(fdef.name, arg)
        for evt_type in sorted(KNOWN_EVENT_TYPES | {"sendto", "userfaultfd"}):
            fn = gen.value_function(FieldRef(fdef.name, arg), evt_type)
            for ev in _events(evt_type):
                assert _outcome(fn, ev) == _outcome(bound.extract, ev), (
                    f"{fdef.name}[{arg}] on {evt_type} {ev.args} proc={ev.proc}")
                checked += 1
    assert checked > 0


def test_matcher_with_inline_fields_never_falls_back() -> None:
    """A generated matcher that raised would be rescued by the rule-by-rule fallback and
    hide the bug; the matchers of a real rule file must run clean."""
    from sysward.agent.engine import DEFAULT_RULES_DIR
    from sysward.bench.rules_bench import synthetic_pool
    from sysward.rules import load_rules

    ruleset = load_rules([DEFAULT_RULES_DIR]).ruleset
    for ev in synthetic_pool(2000):
        ruleset.match(ev)
    assert ruleset.eval_errors == 0
    for ev in synthetic_pool(2000):
        matcher = ruleset._matchers.get(ev.type, ruleset._other_matcher)
        matcher(ev)  # raises on a broken generated source


@pytest.mark.parametrize("path", [
    "/root/.ssh/id_rsa", "/home/u/.bashrc", "/.x", "/a/.b/", "/a/.b/.", "/a/.b/..", "/a/./.b",
    "/a/../.b", "//.x", "/a//.b", "./.x", "../a/.b", ".x/.y", "a/.b", "/.", "/..", "/a/.", "/",
    "/etc/passwd", "/a//b/./c/../d", "///.a",
])
def test_fd_name_normalisation_equals_normpath(path: str) -> None:
    """fd.name's clean path: the fast test that skips normpath for dot files gives what
    normpath gives (a leading '//' aside, which Falco's fd.name makes one '/')."""
    import posixpath

    from sysward.rules.fieldsets.fd import _normalize

    want = posixpath.normpath(path)
    assert _normalize(path) == (want[1:] if want.startswith("//") else want)
