"""The event table (sysward.events.types) is the one list of event types: every other list is
derived from it, and no module of src/ spells out a collection of event type names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sysward.enforce.compiler import ENFORCEABLE_TYPES, PROGRAMS
from sysward.events.types import BY_FALCO_NAME, BY_NAME, EVENT_TYPES, GROUPS
from sysward.kernel.probe import WATCHED_SYSCALLS
from sysward.rules.fieldsets import _events
from sysward.rules.index import KNOWN_EVENT_TYPES

SRC = Path(__file__).parents[2] / "src" / "sysward"
TABLE = SRC / "events" / "types.py"
# The benchmarks name the syscalls their workloads issue (flood setuid, open a file...): those
# are what a benchmark does, not lists of what sysward reports.
WORKLOADS = SRC / "bench"


def _type_names(node: ast.AST) -> list[str]:
    """Event type names spelled as literal members (or keys) of one collection display, or
    compared with in one chain of ``or``/``and``."""
    if isinstance(node, ast.Set | ast.Tuple | ast.List):
        items: list[ast.expr | None] = list(node.elts)
    elif isinstance(node, ast.Dict):
        items = list(node.keys)
    elif isinstance(node, ast.BoolOp):  # t == "bind" or t == "listen"
        items = [x for v in node.values if isinstance(v, ast.Compare)
                 for x in (v.left, *v.comparators)]
    else:
        return []
    return [i.value for i in items if isinstance(i, ast.Constant)
            and isinstance(i.value, str) and i.value in BY_FALCO_NAME]


def _enumerations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(SRC.parent) if SRC in path.parents else path.name
    return [f"{where}:{getattr(n, 'lineno', 0)}: {names}"
            for n in ast.walk(tree) if len(names := _type_names(n)) >= 2]


def test_no_module_enumerates_event_types() -> None:
    found = [hit for p in sorted(SRC.rglob("*.py"))
             if p != TABLE and WORKLOADS not in p.parents for hit in _enumerations(p)]
    assert not found, ("these collections list event types by hand; derive them from "
                       "sysward.events.types (add the fact they need to EventType):\n"
                       + "\n".join(found))


def test_the_scan_sees_an_enumeration(tmp_path: Path) -> None:
    """The scan is not vacuous: it finds a hand-written list, a set and a dispatch dict."""
    src = tmp_path / "m.py"
    src.write_text('A = ("open", "openat")\nB = {"dup", "x"} | {"clone", "fork"}\n'
                   'C = {"mount": 1, "umount": 2}\nD = "open" == "openat"\n'
                   'E = t == "bind" or t == "listen"\n')
    assert sorted(h.split(": ", 1)[1] for h in _enumerations(src)) == [
        "['bind', 'listen']", "['clone', 'fork']", "['mount', 'umount']", "['open', 'openat']"]


def test_doctor_checks_every_syscall_of_the_table() -> None:
    assert set(WATCHED_SYSCALLS) == {t.syscall or t.name for t in EVENT_TYPES
                                     if t.name != "procexit"}
    assert len(WATCHED_SYSCALLS) == len(EVENT_TYPES) - 1
    # the 13 doctor used to skip
    assert {"chdir", "fchdir", "creat", "dup", "dup2", "dup3", "fchmod", "link", "mkdir",
            "rename", "renameat", "symlink", "unlink"} <= set(WATCHED_SYSCALLS)


def test_rule_index_knows_every_falco_name() -> None:
    names = set(BY_NAME) | {a for t in EVENT_TYPES for a in t.aliases}
    assert names == KNOWN_EVENT_TYPES
    assert "umount" in KNOWN_EVENT_TYPES and GROUPS["umount"] == ("umount2",)


def test_enforceable_types_are_the_table_s() -> None:
    assert set(ENFORCEABLE_TYPES) == {t.name for t in EVENT_TYPES if t.enforce}
    for name, cls in ENFORCEABLE_TYPES.items():
        assert BY_NAME[name].enforce == cls.name
    assert set(PROGRAMS) == set(ENFORCEABLE_TYPES.values())


@pytest.mark.parametrize(("group", "expected"), [
    ("OPEN_TYPES", {"open", "openat", "openat2", "creat"}),
    ("SOCKADDR_TYPES", {"connect", "bind", "listen", "accept", "accept4", "dup", "dup2", "dup3"}),
    ("RES_FD_TYPES", {"open", "openat", "openat2", "creat", "accept", "accept4", "dup", "dup2",
                      "dup3", "socket", "memfd_create"}),
    ("ARG_FD_TYPES", {"connect", "bind", "listen", "fchmod", "setns", "finit_module", "fchdir",
                      "fsetxattr", "fremovexattr", "ioctl"}),
])
def test_field_set_groups_keep_their_members(group: str, expected: set[str]) -> None:
    assert getattr(_events, group) == expected
