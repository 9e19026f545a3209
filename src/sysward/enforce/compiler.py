"""Which rules the kernel can enforce, and how: conditions -> slots.

A rule with ``action: kill`` or ``action: deny`` is enforced in the kernel, at the hook that
sees the syscall, so its condition must be decidable there.  The enforceable subset:

* the event type (already folded away: the rule engine specialises each condition per type)
  must be one the enforcement unit hooks (``ENFORCEABLE_TYPES``);
* every other test is a comparison of one of the fields in ``FIELDS`` with constants, by
  ``=``/``==``/``!=``/``in`` (and for paths ``startswith``, ``pmatch`` and ``glob`` with a
  single trailing ``*``), combined freely with ``and``, ``or`` and ``not``.

The condition is put in disjunctive normal form: each alternative (a conjunction of positive
and negated tests) becomes one *slot* of the kernel tables; a slot fires when every one of its
tests holds.  Within one slot, one field kind may be tested positively once (two positive
tests of the same field would need an intersection the kernel tables do not express) and
negatively any number of times (the negated sets are merged).  Anything else is refused with
a sentence naming the part the kernel cannot decide.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sysward.enforce.abi import MAX_SLOTS, PATH_MAX, EnfType, Kind
from sysward.enforce.kcond import Rounding, Undecidable, lower
from sysward.events.text import KERNEL_TEXT_ERRORS
from sysward.events.types import EVENT_TYPES
from sysward.rules.ast import Compare, FieldRef, ListValue, Node, Str, to_text

#: Falco event type -> the enforcement hook class that covers it (EventType.enforce of the
#: event table).  A class covers every syscall of its family (a rule on openat also stops
#: open, openat2 and creat of the same file): otherwise switching to the sibling syscall
#: would walk around the rule.
ENFORCEABLE_TYPES: dict[str, EnfType] = {
    t.name: EnfType[t.enforce] for t in EVENT_TYPES if t.enforce is not None}


def _hook_programs(cls: EnfType) -> tuple[str, ...]:
    """The kernel programs of one class (bpf/enforce.bpf.c names them so): exec is judged when
    the new image starts, open at syscall exit (the file is known), the rest at entry."""
    if cls is EnfType.EXEC:
        return ("enf_exec",)
    where = "exit" if cls is EnfType.OPEN else "enter"
    return tuple(f"enf_{where}_{t.syscall_name}" for t in EVENT_TYPES
                 if t.enforce == cls.name)


#: the kernel programs of each class (their attach is what the class costs)
PROGRAMS: dict[EnfType, tuple[str, ...]] = {
    cls: _hook_programs(cls) for cls in sorted(set(ENFORCEABLE_TYPES.values()))}
CGROUP_PROGRAMS = ("enf_connect4", "enf_connect6", "enf_sendmsg4", "enf_sendmsg6")
LSM_PROGRAMS: dict[EnfType, str] = {
    EnfType.EXEC: "enf_lsm_exec", EnfType.OPEN: "enf_lsm_open", EnfType.PTRACE: "enf_lsm_ptrace",
}

# field -> kind.  Network fields are the remote end: for connect, Falco's server is the peer.
FIELDS: dict[str, Kind] = {
    "proc.exepath": Kind.EXE,
    "proc.name": Kind.COMM,
    "fd.name": Kind.FILE,
    "user.uid": Kind.UID,
    "user.name": Kind.UID,
    "container.id": Kind.CONTAINER,
    "fd.rip": Kind.ADDR, "fd.sip": Kind.ADDR, "fd.rnet": Kind.ADDR, "fd.snet": Kind.ADDR,
    "fd.rport": Kind.PORT, "fd.sport": Kind.PORT,
}
_PROC_KINDS = frozenset({Kind.CONTAINER, Kind.UID, Kind.COMM, Kind.EXE})
KINDS_FOR: dict[EnfType, frozenset[Kind]] = {t: _PROC_KINDS for t in EnfType}
KINDS_FOR[EnfType.OPEN] = _PROC_KINDS | {Kind.FILE}
KINDS_FOR[EnfType.CONNECT] = _PROC_KINDS | {Kind.ADDR, Kind.PORT}

_PATH_KINDS = frozenset({Kind.EXE, Kind.FILE})
_EQ_OPS = frozenset({"=", "==", "in"})
_PATH_OPS = _EQ_OPS | {"startswith", "pmatch", "glob"}
_MAX_ALTERNATIVES = 16
FIELD_LIST = ", ".join(FIELDS)

# the first hint of every refusal: how to load the rule anyway
ALERT_ONLY_HINT = ("or add 'enforce_fallback: alert' to the rule to load it as an alert-only "
                   "rule")


@dataclass(frozen=True, slots=True)
class Test:
    """One kernel test: the key of ``kind`` is (or, negated, is not) among ``values``.

    Path values are (bytes, exact) pairs, address values (16-byte address, prefix bits),
    the others ints (uid, port), bytes (comm) or True (container).
    """

    kind: Kind
    values: frozenset[Any]
    text: str  # the condition part it came from, for messages


@dataclass(slots=True)
class Slot:
    """One alternative of one rule's condition, as the kernel tables hold it."""

    rule: Any  # CompiledRule
    rule_index: int
    types: set[EnfType]
    pos: dict[Kind, Test]
    neg: dict[Kind, set[Any]]
    kill: bool  # kill (True) or deny (False)
    audit: bool
    lsm: bool = False  # a deny that needs the LSM programs

    def key(self) -> tuple[Any, ...]:
        return (self.rule_index, self.kill, tuple(sorted((k, t.values) for k, t in
                                                         self.pos.items())),
                tuple(sorted((k, frozenset(v)) for k, v in self.neg.items())))


@dataclass(slots=True)
class Refusal:
    rule: str
    where: str  # file:line
    reason: str  # one sentence

    def __str__(self) -> str:
        return self.reason


@dataclass(slots=True)
class Plan:
    """The outcome of compiling a rule set for the kernel."""

    slots: list[Slot] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    alert_only: set[str] = field(default_factory=set)  # rules demoted to alert
    rules: list[Any] = field(default_factory=list)  # the enforced CompiledRules

    @property
    def types(self) -> set[EnfType]:
        out: set[EnfType] = set()
        for s in self.slots:
            out |= s.types
        return out

    @property
    def needs_cgroup(self) -> bool:
        return any(EnfType.CONNECT in s.types for s in self.slots)

    @property
    def needs_lsm(self) -> set[EnfType]:
        return {t for s in self.slots if s.lsm for t in s.types}


class Unenforceable(Undecidable):
    """Raised inside the compiler with the sentence's core (the part that cannot be done) and
    the fix to suggest."""

    def __init__(self, message: str,
                 fix: str = "rewrite that part (docs/enforcement.md lists what the kernel "
                            "can test)") -> None:
        super().__init__(message)
        self.fix = fix


# --------------------------------------------------------------------------------------------
# conditions -> clauses of kernel tests (sysward.enforce.kcond, rounded exactly)


Literal = tuple[Test, bool]  # (test, positive)


def _dnf(node: Node) -> list[list[Literal]]:
    """Alternatives (each a list of literals) of a condition; [] means false."""
    try:
        return lower(node, _literal, Rounding.EXACT, _MAX_ALTERNATIVES)
    except Unenforceable:
        raise
    except Undecidable as exc:
        raise Unenforceable(str(exc)) from None


def _values(node: Compare) -> list[str]:
    rhs = node.rhs
    if isinstance(rhs, Str):
        return [rhs.value]
    if isinstance(rhs, ListValue):
        return [i.value for i in rhs.items]
    raise Unenforceable(f"'{to_text(node)}' compares with something other than constants")


def _literal(node: Compare, negated: bool) -> Literal | bool:
    text = to_text(node)
    if negated:
        text = f"not {text}"
    lhs = node.lhs
    if not isinstance(lhs, FieldRef) or lhs.arg is not None:
        raise Unenforceable(f"'{text}' transforms or indexes its field")
    name = lhs.name
    op = node.op
    if name == "evt.dir" and op in ("=", "==", "!=") and isinstance(node.rhs, Str):
        # sysward reports every syscall once, at exit: evt.dir is always '<'
        hit = node.rhs.value == "<"
        hit = hit if op != "!=" else not hit
        return hit != negated
    kind = FIELDS.get(name)
    if kind is None:
        raise Unenforceable(f"'{text}' tests {name}, which the kernel cannot see at the hook "
                            f"(it can test: {FIELD_LIST})")
    if op == "!=":
        op, negated = "=", not negated
    allowed = _PATH_OPS if kind in _PATH_KINDS else _EQ_OPS
    if op not in allowed:
        raise Unenforceable(f"'{text}' uses operator '{op}', which the kernel cannot apply to "
                            f"{name} (it can: {', '.join(sorted(allowed | {'!='}))})")
    values = frozenset(_encode(kind, name, op, v, text) for v in _values(node))
    if kind is Kind.CONTAINER:
        # 'container.id = host' is the negation of 'in a container'
        return Test(kind, frozenset({True}), text), negated
    if kind in _PATH_KINDS:
        values = frozenset(e for entries in values for e in entries)
    return Test(kind, values, text), not negated


def _encode(kind: Kind, name: str, op: str, value: str, text: str) -> Any:
    if kind in _PATH_KINDS:
        return _encode_path(op, value, text)
    if kind is Kind.COMM:
        return value.encode("utf-8", KERNEL_TEXT_ERRORS)[:15]
    if kind is Kind.UID:
        if name == "user.name":
            try:
                return pwd.getpwnam(value).pw_uid
            except KeyError:
                raise Unenforceable(f"'{text}' names user '{value}', who does not exist on this "
                                    "host") from None
        return _int(value, text, 0, 2**32 - 1)
    if kind is Kind.PORT:
        return _int(value, text, 0, 65535)
    if kind is Kind.ADDR:
        try:
            net = (ipaddress.ip_network(value, strict=False) if name.endswith("net")
                   else ipaddress.ip_network(ipaddress.ip_address(value)))
        except ValueError:
            raise Unenforceable(f"'{text}': '{value}' is not an IP address or network") from None
        if net.version == 4:
            mapped = b"\0" * 10 + b"\xff\xff" + net.network_address.packed
            return (mapped, 96 + net.prefixlen)
        return (net.network_address.packed, net.prefixlen)
    if kind is Kind.CONTAINER:
        if value != "host":
            raise Unenforceable(f"'{text}': the kernel tells a container from the host, not one "
                                "container from another (compare container.id with 'host')")
        return True
    raise AssertionError(kind)


def _int(value: str, text: str, lo: int, hi: int) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise Unenforceable(f"'{text}': '{value}' is not a number") from None
    if not lo <= n <= hi:
        raise Unenforceable(f"'{text}': {n} is out of range")
    return n


def _encode_path(op: str, value: str, text: str) -> tuple[tuple[bytes, bool], ...]:
    """The trie entries of one path value: (bytes, exact) pairs, with the symlink-resolved
    spelling too (the kernel sees /usr/bin/cat where a rule may say /bin/cat)."""
    if not value.startswith("/"):
        raise Unenforceable(f"'{text}': '{value}' is not an absolute path, and the kernel "
                            "compares absolute paths")
    if len(value.encode("utf-8", KERNEL_TEXT_ERRORS)) >= PATH_MAX - 1:
        raise Unenforceable(f"'{text}': the path is longer than the {PATH_MAX - 2} bytes the "
                            "kernel compares")
    if op in _EQ_OPS:
        entries = [(value, True)]
    elif op == "startswith":
        entries = [(value, False)]
    elif op == "glob":
        if "*" in value[:-1] or not value.endswith("*") or any(c in value for c in "?[]"):
            raise Unenforceable(f"'{text}': only a glob with a single trailing '*' (a prefix) "
                                "can be matched in the kernel")
        entries = [(value[:-1], False)]
    elif op == "pmatch":  # the directory itself, or anything below it
        base = value.rstrip("/") or "/"
        entries = [(base, True), (base if base.endswith("/") else base + "/", False)]
    else:
        raise AssertionError(op)
    out: set[tuple[bytes, bool]] = set()
    for path, exact in entries:
        out.add((path.encode("utf-8", KERNEL_TEXT_ERRORS), exact))
        real = _resolved(path, exact)
        if real != path and len(real.encode("utf-8", KERNEL_TEXT_ERRORS)) < PATH_MAX - 1:
            out.add((real.encode("utf-8", KERNEL_TEXT_ERRORS), exact))
    return tuple(sorted(out))


def _resolved(path: str, exact: bool) -> str:
    """``path`` with the symlinks of its directories (and, when exact, itself) resolved."""
    if exact:
        return os.path.realpath(path)
    head, _, tail = path.rpartition("/")
    real_head = os.path.realpath(head or "/")
    return real_head.rstrip("/") + "/" + tail


# --------------------------------------------------------------------------------------------
# rules -> slots


def _kind_name(kind: Kind) -> str:
    return {Kind.EXE: "proc.exepath", Kind.COMM: "proc.name", Kind.FILE: "fd.name",
            Kind.UID: "user.uid", Kind.CONTAINER: "container.id", Kind.ADDR: "the address",
            Kind.PORT: "the port"}[kind]


def _alternative(lits: list[Literal], etype: EnfType, evt: str) -> tuple[dict[Kind, Test],
                                                                          dict[Kind, set[Any]]]:
    pos: dict[Kind, Test] = {}
    neg: dict[Kind, set[Any]] = {}
    for test, positive in lits:
        if test.kind not in KINDS_FOR[etype]:
            raise Unenforceable(f"'{test.text}' cannot be decided at the {evt} hook (there it "
                                "knows only " + ", ".join(sorted(
                                    _kind_name(k) for k in KINDS_FOR[etype])) + ")")
        if positive:
            if test.kind in pos:
                if pos[test.kind].values == test.values:
                    continue
                if test.kind is Kind.CONTAINER:
                    continue
                raise Unenforceable(f"'{pos[test.kind].text}' and '{test.text}' both must hold; "
                                    f"the kernel can test {_kind_name(test.kind)} positively "
                                    "once per alternative")
            pos[test.kind] = test
        else:
            neg.setdefault(test.kind, set()).update(test.values)
    if Kind.CONTAINER in pos and Kind.CONTAINER in neg:
        raise Unenforceable("an alternative asks for a container and the host at once")
    return pos, neg


def _is_selective(pos: dict[Kind, Test]) -> bool:
    return bool(set(pos) & {Kind.EXE, Kind.COMM, Kind.FILE, Kind.ADDR, Kind.PORT})


def compile_rules(rules: Iterable[Any], *, mode: str = "on", lsm_available: bool = False,
                  deny_fallback_kill: bool = False, alert_only_unenforceable: bool = False
                  ) -> Plan:
    """Compile every rule with action kill/deny; refuse (or demote) what the kernel cannot do.

    ``mode`` is the config's enforce.mode (audit marks every slot audit).  A rule asks to be
    loaded alert-only when its condition is outside the subset with ``enforce_fallback: alert``
    (or the caller passes ``alert_only_unenforceable``); it is then left out with a warning.
    """
    plan = Plan()
    slots: dict[tuple[Any, ...], Slot] = {}
    index = 0
    for rule in rules:
        if rule.action not in ("kill", "deny"):
            continue
        where = f"{rule.file}:{rule.line}" if rule.file else "<rules>"
        fallback = str(rule.extra.get("enforce_fallback", "")).lower()
        audit = mode == "audit" or str(rule.extra.get("enforce_mode", "")).lower() == "audit"
        try:
            made = _compile_rule(rule, index, audit, lsm_available, deny_fallback_kill)
        except Unenforceable as exc:
            sentence = (f"rule '{rule.name}' ({where}) has action {rule.action}, but "
                        f"{exc}")
            if alert_only_unenforceable or fallback == "alert":
                plan.alert_only.add(rule.name)
                plan.warnings.append(f"{sentence}; it is loaded as an alert-only rule.")
            else:
                plan.refused.append(Refusal(rule.name, where,
                                            f"{sentence}; {exc.fix}, {ALERT_ONLY_HINT}."))
            continue
        for s in made:
            k = s.key()
            if k in slots:
                slots[k].types |= s.types
            else:
                slots[k] = s
        plan.rules.append(rule)
        index += 1
    plan.slots = list(slots.values())
    if len(plan.slots) > MAX_SLOTS:
        plan.refused.append(Refusal(
            "", "", f"the enforced rules need {len(plan.slots)} kernel slots (one per "
            f"alternative of each condition) but the kernel tables hold {MAX_SLOTS}; enforce "
            "fewer rules or merge their conditions with 'in' lists."))
    return plan


def _compile_rule(rule: Any, index: int, audit: bool, lsm_available: bool,
                  fallback_kill: bool) -> list[Slot]:
    trees: dict[str, Node] = dict(rule.conditions)
    if rule.unnamed_condition is not None:
        raise Unenforceable("its condition does not restrict evt.type, and the kernel enforces "
                            "per hooked event type (add evt.type in (...))")
    if not trees:
        raise Unenforceable("its condition matches no event type")
    out: list[Slot] = []
    for evt, tree in sorted(trees.items()):
        etype = ENFORCEABLE_TYPES.get(evt)
        if etype is None:
            raise Unenforceable(f"the kernel has no enforcement hook for evt.type {evt} (it has: "
                                + ", ".join(ENFORCEABLE_TYPES) + ")")
        kill = rule.action == "kill"
        lsm = False
        if not kill:
            if etype is EnfType.CONNECT:
                pass  # cgroup connect/sendmsg programs refuse with EPERM
            elif etype in LSM_PROGRAMS and lsm_available:
                lsm = True
            elif fallback_kill:
                kill = True
            else:
                why = ("this kernel does not run BPF LSM programs (see 'sysward doctor')"
                       if etype in LSM_PROGRAMS else "no kernel hook can refuse it")
                raise Unenforceable(f"deny is impossible for evt.type {evt}: {why}",
                                    "use action kill, or set enforce.deny_fallback_kill: true "
                                    "to kill instead")
        for lits in _dnf(tree):
            pos, neg = _alternative(lits, etype, evt)
            if lsm and etype is EnfType.EXEC and Kind.COMM in pos | neg:
                raise Unenforceable("a deny of an exec cannot test proc.name: the new "
                                    "program's name is only set once the exec succeeded")
            if kill and etype in (EnfType.EXEC, EnfType.OPEN) and not _is_selective(pos):
                raise Unenforceable(f"an alternative of its condition would kill on every "
                                    f"{evt} (test proc.exepath, proc.name or fd.name)")
            out.append(Slot(rule, index, {etype}, pos, neg, kill, audit, lsm))
    if not out:
        raise Unenforceable("its condition can never be true at a kernel hook")
    return out


def first_refusal(plan: Plan) -> str | None:
    if not plan.refused:
        return None
    more = len(plan.refused) - 1
    text = plan.refused[0].reason
    return text + (f" ({more} more rule(s) refused)" if more else "")


__all__: Sequence[str] = [
    "ENFORCEABLE_TYPES", "FIELDS", "Plan", "Refusal", "Slot", "Test", "compile_rules",
    "first_refusal",
]
