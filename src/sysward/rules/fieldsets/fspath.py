"""``fs.path.*`` and ``evt.abspath*``: the file system paths of an event, whatever its type.

Falco added ``fs.path.*`` so that a rule can name "the path this syscall works on" without
knowing that unlink calls it ``name``, mkdir ``path`` and chmod ``filename``: ``fs.path.name``
for the events that work on one path, ``fs.path.source`` and ``fs.path.target`` for those that
work on two (rename, link: old and new; symlink: the link's content and the link).  The sensor
already makes each path absolute against the dirfd or the cwd, so the resolved and the raw
forms are the same here except for opens, which keep the raw one (``nameraw``).

``evt.abspath`` (``.src``/``.dst``) is Falco's older form of the same, defined only for the
``*at`` syscalls whose paths are relative to a dirfd.
"""

from __future__ import annotations

from typing import Any

from sysward.events.model import Event
from sysward.events.types import EVENT_TYPES, GROUPS
from sysward.rules.fieldsets._events import OPEN_TYPES
from sysward.rules.fieldtypes import FieldDef, FieldType, simple

S = FieldType.STRING

# event type -> (argument of the one path), or (source, target) of the two-path events
_ONE: dict[str, str] = {}
_TWO: dict[str, tuple[str, str]] = {}
for _t in EVENT_TYPES:
    # chdir and fchdir feed the process table (cwd): they work on no file
    if _t.family != "file" or not _t.strs or _t.proctable:
        continue
    if _t.name in GROUPS["xattr"]:  # a path and an attribute name (no second path)
        _ONE[_t.name] = _t.strs[0]
    elif len(_t.strs) == 2:
        _TWO[_t.name] = (_t.strs[0], _t.strs[1])
    elif _t.path0 or _t.name in OPEN_TYPES:
        _ONE[_t.name] = _t.strs[0]


def _is_at(name: str) -> bool:
    """The dirfd-relative variants: openat, unlinkat, renameat2... (creat only looks like one)"""
    return name.endswith(("at", "at2")) and name != "creat"


#: the *at syscalls evt.abspath covers: one path, or (src, dst)
_AT_ONE = {t: a for t, a in _ONE.items() if _is_at(t)}
_AT_TWO = {t: a for t, a in _TWO.items() if _is_at(t)}


def _path(e: Event, key: str | None) -> Any:
    if key is None:
        return None
    value = e.args.get(key)
    return value if isinstance(value, str) and value else None


def _name(e: Event) -> Any:
    return _path(e, _ONE.get(e.type))


def _nameraw(e: Event) -> Any:
    key = _ONE.get(e.type)
    if key is None:
        return None
    raw = e.args.get("nameraw")
    return raw if isinstance(raw, str) and raw else _path(e, key)


def _source(e: Event) -> Any:
    pair = _TWO.get(e.type)
    return _path(e, pair[0]) if pair else None


def _target(e: Event) -> Any:
    pair = _TWO.get(e.type)
    return _path(e, pair[1]) if pair else None


def _abspath(e: Event) -> Any:
    return _path(e, _AT_ONE.get(e.type))


def _abspath_src(e: Event) -> Any:
    pair = _AT_TWO.get(e.type)
    # symlinkat's first argument is the link's content, not a path resolved against dirfd
    return _path(e, pair[0]) if pair and e.type != "symlinkat" else None


def _abspath_dst(e: Event) -> Any:
    pair = _AT_TWO.get(e.type)
    return _path(e, pair[1]) if pair else None


_ONE_DOC = ", ".join(sorted(_ONE))
_TWO_DOC = ", ".join(sorted(_TWO))

FIELDS: list[FieldDef] = [
    FieldDef("fs.path.name", S, "The path a one-path file syscall works on, absolute.",
             simple(_name), availability=_ONE_DOC),
    FieldDef("fs.path.nameraw", S, "The same path as the process passed it.",
             simple(_nameraw), availability=_ONE_DOC),
    FieldDef("fs.path.source", S, "The source path of a two-path file syscall (rename, link: "
             "the old path; symlink: the link's content), absolute.", simple(_source),
             availability=_TWO_DOC),
    FieldDef("fs.path.sourceraw", S, "The source path as the process passed it.",
             simple(_source), availability=_TWO_DOC),
    FieldDef("fs.path.target", S, "The target path of a two-path file syscall (the new path, "
             "the link), absolute.", simple(_target), availability=_TWO_DOC),
    FieldDef("fs.path.targetraw", S, "The target path as the process passed it.",
             simple(_target), availability=_TWO_DOC),
    FieldDef("evt.abspath", S, "Absolute path of a one-path *at syscall (dirfd + name).",
             simple(_abspath), availability=", ".join(sorted(_AT_ONE))),
    FieldDef("evt.abspath.src", S, "Absolute source path of renameat/renameat2/linkat.",
             simple(_abspath_src), availability=", ".join(sorted(_AT_TWO))),
    FieldDef("evt.abspath.dst", S, "Absolute destination path of renameat/renameat2/linkat/"
             "symlinkat.", simple(_abspath_dst), availability=", ".join(sorted(_AT_TWO))),
]
