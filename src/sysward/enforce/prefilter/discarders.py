"""Discarders: paths that no loaded rule of an event type can ever match, learned at run time.

The approvers (sysward.enforce.prefilter.compiler) are decided before any event is seen; a
rule the kernel cannot test (``fd.name contains``, a glob, ancestry...) makes its event type
pass.  After such an event has been evaluated, user space may *prove* that no rule of the type
can match any event with the same path, whatever its other fields (process, flags, result,
user...), and write the path into a bounded kernel map that the sensor checks before it builds
a record (bpf/sw_discard.h).

The proof, per event type, is made once when the rules are loaded:

* every enabled rule's condition specialised for the type (``CompiledRule.condition_for``:
  macros, lists and exceptions expanded exactly as the engine evaluates them) has its
  negations pushed to the leaves;
* a leaf whose value is a function of the path argument alone (``PATH_FIELDS``: ``fd.name``,
  ``fd.directory``, ``evt.arg.name``..., possibly through ``basename``/``tolower``...) compared
  with constants is kept; every other leaf is unknown and becomes true ("may match"), negated
  or not;
* what is left, the rules of the type or-ed, is compiled by the engine's own code generator
  into ``may_match(event)``.  Since every leaf that was kept gives the same value for every
  event with the same path, and every other leaf was rounded up, ``may_match(e) is False``
  proves that no rule of the type matches any event whose path is ``e``'s.

A type *cannot learn* discarders when some rule's residual is true whatever the path (it rests
on fields other than the path), when the process table needs its events
(``STATE_TYPES``), or when it has no path argument.

The key is the absolute path the decoder gives the rules (``fd.name``): only a clean one
(no ``.``/``..`` components, no ``//``, no trailing ``/``) short enough for the kernel key;
the kernel looks it up for an absolute path argument exactly as passed, so a relative or
unclean spelling of the same file simply misses.  A discarder is about the path string, so
renames, new files and other mounts at that path keep it true; it is never about an inode.

``Discarders`` is the run-time half: the worker offers it each evaluated event that matched
nothing; it remembers what it proved (and what it could not), writes new keys into the kernel
map, evicts with a second-chance clock when the map is full (the kernel marks the entries it
hits), counts added / evicted / cleared, and is cleared (and suspended) on every reload.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sysward.enforce.prefilter.abi import DISC_KEY, DISC_VAL, DiscBound
from sysward.enforce.prefilter.atoms import VIEWS
from sysward.enforce.prefilter.compiler import STATE_TYPES
from sysward.events.model import Event
from sysward.events.text import KERNEL_TEXT_ERRORS
from sysward.events.types import BY_NAME, GROUPS
from sysward.rules.ast import (
    TRANSFORMERS,
    And,
    Compare,
    Const,
    FieldRef,
    ListRef,
    ListValue,
    Node,
    Not,
    Or,
    Str,
    Transform,
    to_text,
)

log = logging.getLogger(__name__)

#: bytes of a discarder's path key in the kernel, NUL included (bpf/discard.h); the kernel
#: cannot tell a string that fills its read from a longer one, so the longest path that can
#: be a key is two bytes shorter
DISC_PATH = int(DiscBound.DISC_PATH)
KEY_PATH_MAX = DISC_PATH - 2
#: entries of the kernel map
DISC_MAX = int(DiscBound.DISC_MAX)

_OPEN_TYPES = frozenset(GROUPS["open"])


def _path_fields(evt: str) -> frozenset[str]:
    """The fields whose value, on an event of type ``evt``, is a function of its path argument
    alone (the same for every event with the same ``args[path_arg]``)."""
    from sysward.rules.fieldsets import evt as evt_fields
    from sysward.rules.fieldsets import fspath

    view = VIEWS.get(evt)
    if view is None or view.path_arg is None:
        return frozenset()
    p = view.path_arg
    out: set[str] = set()
    alias = evt_fields.ALIASES.get(p)
    if alias is None or evt not in alias:
        out.add(f"evt.arg.{p}")  # a path argument renders as itself
    if evt in _OPEN_TYPES:
        # fd.name/nameraw/directory come from args["name"] (fd.filename does not: it is missing
        # on a failed open, so it depends on the result too)
        out |= {"fd.name", "fd.nameraw", "fd.directory"}
    if fspath._ONE.get(evt) == p:
        out |= {"fs.path.name", "fs.path.nameraw"}
    if fspath._AT_ONE.get(evt) == p:
        out.add("evt.abspath")
    return frozenset(out)


#: event type -> the fields that are functions of its path argument alone
PATH_FIELDS: dict[str, frozenset[str]] = {t: _path_fields(t) for t in VIEWS}


def _operand_is_path(node: Any, fields: frozenset[str]) -> bool:
    while isinstance(node, Transform):
        if node.func not in TRANSFORMERS:
            return False
        node = node.arg
    return isinstance(node, FieldRef) and node.arg is None and node.name in fields


def _constant(rhs: Any) -> bool:
    return rhs is None or isinstance(rhs, Str | ListValue | ListRef)


class _Always(Exception):
    """The residual of a rule is true whatever the path: the type cannot learn."""


#: a positive leaf -> an equivalent-or-weaker leaf over the path alone, or None
Rewrite = Callable[[Compare], "Node | None"]


def _no_rewrite(node: Compare) -> Node | None:
    return None


def residual(node: Node, fields: frozenset[str], neg: bool = False,
             rewrite: Rewrite = _no_rewrite) -> Node:
    """``node`` (negated when ``neg``) with its negations pushed to the leaves, the leaves that
    are not functions of the path rounded to true, and constants folded.  Sound: for every
    event, if the condition holds, the residual holds (it is weaker).  ``rewrite`` may turn a
    positive leaf into a weaker one over the path."""
    if isinstance(node, Const):
        return Const(node.value != neg)
    if isinstance(node, Not):
        return residual(node.child, fields, not neg, rewrite)
    if isinstance(node, And | Or):
        conj = isinstance(node, And) != neg
        kids = [residual(c, fields, neg, rewrite) for c in node.children]
        if conj:
            if any(isinstance(k, Const) and not k.value for k in kids):
                return Const(False)
            kids = [k for k in kids if not isinstance(k, Const)]
            if not kids:
                return Const(True)
            return kids[0] if len(kids) == 1 else And(tuple(kids))
        if any(isinstance(k, Const) and k.value for k in kids):
            return Const(True)
        kids = [k for k in kids if not isinstance(k, Const)]
        if not kids:
            return Const(False)
        return kids[0] if len(kids) == 1 else Or(tuple(kids))
    if (isinstance(node, Compare) and _operand_is_path(node.lhs, fields)
            and _constant(node.rhs)):
        return Not(node) if neg else node
    if isinstance(node, Compare) and not neg:
        weaker = rewrite(node)
        if weaker is not None:
            return weaker
    return Const(True)  # unknown: may match, negated or not


def _swap_base(node: Any, base: Node) -> Any:
    """The operand ``node`` (a chain of transforms over one field) over ``base`` instead."""
    if isinstance(node, Transform):
        return Transform(node.func, _swap_base(node.arg, base), pos=node.pos, origin=node.origin)
    return base


def _filename_rewrite(evt: str, gen: Any) -> Rewrite:
    """fd.filename of an open is missing on a failed open (no descriptor was made) and
    ``basename(fd.name)`` otherwise.  A positive comparison that the engine finds false on a
    missing value is therefore at most the same comparison of ``basename(fd.name)``."""
    failed = _failed_open(evt)

    def rewrite(node: Compare) -> Node | None:
        inner: Any = node.lhs
        while isinstance(inner, Transform):
            if inner.func not in TRANSFORMERS:
                return None
            inner = inner.arg
        if not (isinstance(inner, FieldRef) and inner.name == "fd.filename"
                and inner.arg is None and _constant(node.rhs)):
            return None
        try:
            if gen.function(node)(failed):
                return None  # true on a missing value: it says nothing about the path
        except Exception:  # noqa: BLE001 - whatever the engine cannot evaluate stays unknown
            return None
        base = Transform("basename", FieldRef("fd.name", pos=inner.pos, origin=inner.origin),
                         pos=inner.pos, origin=inner.origin)
        return Compare(_swap_base(node.lhs, base), node.op, node.rhs, pos=node.pos,
                       origin=node.origin)

    return rewrite


def _failed_open(evt: str) -> Event:
    """A failed open of type ``evt`` (its fd.filename is missing), as the decoder makes it."""
    from sysward.events.decoder import Decoder
    from sysward.events.types import HEADER, STRS

    et = BY_NAME[evt]
    name = b"/x\0"
    payload = STRS.struct.pack(-100, 0, 0, len(name), 0, 0, 0, 0, 0, 0)
    size = HEADER.size + len(payload) + len(name)
    header = HEADER.struct.pack(1, 0, 0, -2, size, et.id, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                0, b"x".ljust(16, b"\0"))
    ev = Decoder(boot_offset=0).decode(header + payload + name)
    assert ev is not None and ev.res < 0
    return ev


@dataclass(slots=True)
class TypePlan:
    """What the discarders of one event type rest on."""

    evt: str
    #: may_match(event) is False: no rule of the type matches any event with its path
    may_match: Callable[[Event], Any] | None = None
    reason: str = ""  # why the type cannot learn (may_match is None)
    #: rule -> its residual over the path (for explain)
    residuals: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Plan:
    by_type: dict[str, TypePlan] = field(default_factory=dict)

    def learning_types(self) -> list[str]:
        return sorted(t for t, p in self.by_type.items() if p.may_match is not None)


def compile_type(evt: str, rules: Iterable[Any], gen: Any = None) -> TypePlan:
    tp = TypePlan(evt)
    fields = PATH_FIELDS.get(evt, frozenset())
    if evt in STATE_TYPES:
        tp.reason = "the process table needs every event of this type"
        return tp
    if not fields:
        tp.reason = "the type has no path argument the kernel can key on"
        return tp
    if gen is None:
        from sysward.rules import fields as registry
        from sysward.rules.codegen.matcher import CodeGen

        gen = CodeGen(registry, "<sysward-discarders>")
    rewrite = _filename_rewrite(evt, gen) if evt in _OPEN_TYPES else _no_rewrite
    parts: list[Node] = []
    for rule in rules:
        tree = rule.condition_for(evt)
        if tree is None:
            continue
        res = residual(tree, fields, rewrite=rewrite)
        if isinstance(res, Const) and res.value:
            tp.reason = (f"rule '{rule.name}' can match {evt} events whatever their path "
                         "(its condition rests on other fields there)")
            tp.residuals.clear()
            return tp
        tp.residuals[rule.name] = to_text(res)
        if not (isinstance(res, Const) and not res.value):
            parts.append(res)
    tree = Or(tuple(parts)) if len(parts) > 1 else parts[0] if parts else Const(False)
    tp.may_match = gen.function(tree)
    return tp


def compile_discarders(rules: Sequence[Any], types: Iterable[str]) -> Plan:
    """The discarder plan of each of ``types`` (the attached, filtered event types)."""
    from sysward.rules import fields as registry
    from sysward.rules.codegen.matcher import CodeGen

    gen = CodeGen(registry, "<sysward-discarders>")
    out = Plan()
    for evt in sorted(set(types)):
        out.by_type[evt] = compile_type(evt, rules, gen)
    return out


def clean_path(path: bytes) -> bool:
    """An absolute path the kernel and the decoder spell the same way."""
    if not path.startswith(b"/") or len(path) > KEY_PATH_MAX or b"\0" in path:
        return False
    if path == b"/":
        return True
    if path.endswith(b"/") or b"//" in path:
        return False
    return not any(part in (b".", b"..") for part in path.split(b"/"))


def key_of(ev: Event) -> bytes | None:
    """The path of ``ev`` as a discarder key (None: it cannot be one)."""
    view = VIEWS.get(ev.type)
    if view is None or view.path_arg is None:
        return None
    v = ev.args.get(view.path_arg)
    if not isinstance(v, str) or not v.startswith("/"):
        return None
    raw = v.encode("utf-8", KERNEL_TEXT_ERRORS)
    return raw if clean_path(raw) else None


_KEY = DISC_KEY.struct
_VAL = DISC_VAL.struct
_U32 = struct.Struct("<I")


def kernel_key(tid: int, path: bytes) -> bytes:
    return _KEY.pack(tid, path.ljust(DISC_PATH, b"\0"))


class KernelMaps(Protocol):
    """The sensor's two discarder maps (sysward.kernel.BpfMap does this)."""

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None: ...
    def delete(self, key: bytes) -> bool: ...
    def lookup(self, key: bytes) -> bytes | None: ...


class MemoryMap:
    """A BPF hash map's behaviour in memory, for the replay's model of the kernel and tests."""

    def __init__(self, max_entries: int | None = None) -> None:
        self.entries: dict[bytes, bytes] = {}
        self.max_entries = max_entries

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        if (self.max_entries is not None and key not in self.entries
                and len(self.entries) >= self.max_entries):
            raise OSError("the map is full")
        self.entries[key] = value

    def delete(self, key: bytes) -> bool:
        return self.entries.pop(key, None) is not None

    def lookup(self, key: bytes) -> bytes | None:
        return self.entries.get(key)


@dataclass(slots=True)
class DiscardStats:
    added: int = 0
    evicted: int = 0
    cleared: int = 0  # removed by reloads
    live: int = 0


class Discarders:
    """The run-time discarders of one sensor: proofs, the kernel map, counts.

    ``learn`` runs in the worker thread (after the rules); ``suspend`` / ``resume`` are
    called around a reload so that no key proved under the old rules survives into, or is
    written under, the new ones.
    """

    #: keys that could not be discarded, remembered so that a hot one is not re-proved
    MAX_REFUSED = 4096

    def __init__(self, plan: Plan, keys: KernelMaps, on: KernelMaps,
                 capacity: int = DISC_MAX) -> None:
        self._plan = plan
        self._keys = keys
        self._on = on
        self.capacity = capacity
        self.stats = DiscardStats()
        self._live: OrderedDict[tuple[int, bytes], None] = OrderedDict()  # clock order
        self._refused: deque[tuple[int, bytes]] = deque()
        self._refused_set: set[tuple[int, bytes]] = set()
        self._types_on: set[int] = set()
        self._active = True
        self._learning = frozenset(plan.learning_types())
        self._lock = threading.Lock()

    @property
    def plan(self) -> Plan:
        return self._plan

    @property
    def learning(self) -> frozenset[str]:
        """The event types whose events are worth offering to ``learn``."""
        return self._learning if self._active else frozenset()

    def summary(self) -> str:
        st = self.stats
        return (f"added={st.added} evicted={st.evicted} cleared={st.cleared} live={st.live} "
                f"capacity={self.capacity} types={','.join(sorted(self._learning)) or '-'}")

    def learn(self, ev: Event) -> bool:
        """Offer one evaluated event; True when its path became a discarder."""
        tp = self._plan.by_type.get(ev.type)
        if tp is None or tp.may_match is None or not self._active:
            return False
        path = key_of(ev)
        if path is None:
            return False
        et = BY_NAME[ev.type]
        k = (et.id, path)
        if k in self._live or k in self._refused_set:
            return False
        try:
            may = tp.may_match(ev)
        except Exception:  # noqa: BLE001 - an extractor failing on an odd event proves nothing
            may = True
        if may:
            self._refuse(k)
            return False
        with self._lock:
            if not self._active:
                return False
            self._add(k)
        return True

    def _refuse(self, k: tuple[int, bytes]) -> None:
        self._refused.append(k)
        self._refused_set.add(k)
        if len(self._refused) > self.MAX_REFUSED:
            self._refused_set.discard(self._refused.popleft())

    def _add(self, k: tuple[int, bytes]) -> None:
        while len(self._live) >= self.capacity:
            self._evict_one()
        self._keys.update(kernel_key(*k), _VAL.pack(0, 0))
        self._live[k] = None
        self.stats.added += 1
        self.stats.live = len(self._live)
        if k[0] not in self._types_on:
            self._on.update(_U32.pack(k[0]), _U32.pack(1))
            self._types_on.add(k[0])

    def _evict_one(self) -> None:
        """Second chance: an entry the kernel hit since it was last looked at (its ``ref``)
        goes to the back once with the mark cleared; the first one not hit is removed."""
        for _ in range(len(self._live)):
            k, _ = self._live.popitem(last=False)
            kk = kernel_key(*k)
            raw = self._keys.lookup(kk)
            if raw is not None and _VAL.unpack(raw)[0]:
                self._keys.update(kk, _VAL.pack(0, 0))
                self._live[k] = None
                continue
            self._keys.delete(kk)
            self.stats.evicted += 1
            return
        # every entry was hit: the oldest goes anyway
        k, _ = self._live.popitem(last=False)
        self._keys.delete(kernel_key(*k))
        self.stats.evicted += 1

    def suspend(self) -> None:
        """Stop using and learning discarders and remove them all (before a reload changes
        the rules or the kernel's tables)."""
        with self._lock:
            self._active = False
            for tid in sorted(self._types_on):
                self._on.update(_U32.pack(tid), _U32.pack(0))
            self._types_on.clear()
            for k in self._live:
                self._keys.delete(kernel_key(*k))
            self.stats.cleared += len(self._live)
            self._live.clear()
            self.stats.live = 0
            self._refused.clear()
            self._refused_set.clear()

    def resume(self, plan: Plan) -> None:
        """Learn again, from the proofs of ``plan`` (the rules now in force)."""
        with self._lock:
            self._plan = plan
            self._learning = frozenset(plan.learning_types())
            self._active = True

    def holds(self, ev: Event) -> bool:
        """Is ``ev``'s path a live discarder of its type (what the kernel looks up)?"""
        et = BY_NAME.get(ev.type)
        path = key_of(ev)
        return et is not None and path is not None and (et.id, path) in self._live

    def keys(self) -> list[tuple[str, bytes]]:
        """The live discarders (type name, path), oldest first."""
        by_id = {et.id: name for name, et in BY_NAME.items()}
        return [(by_id.get(tid, str(tid)), p) for tid, p in self._live]


__all__ = ["DISC_MAX", "DISC_PATH", "DiscardStats", "Discarders", "KEY_PATH_MAX", "MemoryMap",
           "PATH_FIELDS",
           "Plan", "TypePlan", "clean_path", "compile_discarders", "compile_type", "kernel_key",
           "key_of", "residual"]
