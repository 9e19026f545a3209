"""Event-type index: which event types can a condition match?

Instead of computing type sets with separate rules for and/or/not, we *specialise* the
condition for one event type: every ``evt.type = x`` / ``!= x`` / ``in (...)`` becomes a
constant, and the tree is simplified (``and`` with a false child is false, ``or`` with a true
child is true, ``not`` flips a constant).  A rule can match type T exactly when its
specialisation for T is not the constant false -- which is what intersecting under ``and``,
uniting under ``or`` and pushing ``not`` down compute, only without losing precision.

Types that a condition never names all behave the same, so one extra specialisation
(``OTHER``) covers them: when it is not false, the rule can match types it does not name
(Falco warns about such rules: they run on every event).  The specialised trees are also
what the compiler turns into code, so per-event evaluation never re-tests ``evt.type``.
"""

from __future__ import annotations

from sysward.events.types import BY_FALCO_NAME
from sysward.rules.ast import And, Compare, Const, FieldRef, ListValue, Node, Not, Or, Str, walk

#: stands for "any event type this condition does not name"
OTHER = "\x00other"

# The event types sysward's sensors report, under every Falco name (the event table): what
# "every type" means when the agent has to attach probes for a rule that does not restrict
# evt.type.
KNOWN_EVENT_TYPES: frozenset[str] = frozenset(BY_FALCO_NAME)

_TYPE_OPS = frozenset({"=", "==", "!=", "in"})


def _is_type_check(node: Node) -> bool:
    return (isinstance(node, Compare) and node.op in _TYPE_OPS
            and isinstance(node.lhs, FieldRef) and node.lhs.name == "evt.type"
            and node.lhs.arg is None and isinstance(node.rhs, Str | ListValue))


def _type_values(node: Compare) -> frozenset[str]:
    rhs = node.rhs
    if isinstance(rhs, Str):
        return frozenset((rhs.value,))
    assert isinstance(rhs, ListValue)
    return frozenset(i.value for i in rhs.items)


def named_types(node: Node) -> frozenset[str]:
    """Every event type the condition compares evt.type with."""
    out: set[str] = set()
    for n in walk(node):
        if _is_type_check(n):
            assert isinstance(n, Compare)
            out |= _type_values(n)
    return frozenset(out)


TRUE = Const(True)
FALSE = Const(False)


def specialize(node: Node, evt_type: str) -> Node:
    """The condition as it reads for events of type ``evt_type`` (OTHER: an unnamed type)."""
    if isinstance(node, And):
        kids: list[Node] = []
        for c in node.children:
            s = specialize(c, evt_type)
            if isinstance(s, Const):
                if not s.value:
                    return FALSE
                continue
            if isinstance(s, And):
                kids.extend(s.children)
            else:
                kids.append(s)
        if not kids:
            return TRUE
        return kids[0] if len(kids) == 1 else And(tuple(kids), pos=node.pos, origin=node.origin)
    if isinstance(node, Or):
        kids = []
        for c in node.children:
            s = specialize(c, evt_type)
            if isinstance(s, Const):
                if s.value:
                    return TRUE
                continue
            if isinstance(s, Or):
                kids.extend(s.children)
            else:
                kids.append(s)
        if not kids:
            return FALSE
        return kids[0] if len(kids) == 1 else Or(tuple(kids), pos=node.pos, origin=node.origin)
    if isinstance(node, Not):
        s = specialize(node.child, evt_type)
        if isinstance(s, Const):
            return FALSE if s.value else TRUE
        if isinstance(s, Not):
            return s.child
        return Not(s, pos=node.pos, origin=node.origin)
    if _is_type_check(node):
        assert isinstance(node, Compare)
        hit = evt_type in _type_values(node)
        return Const(not hit if node.op == "!=" else hit)
    return node


def can_match(node: Node, evt_type: str) -> bool:
    s = specialize(node, evt_type)
    return not (isinstance(s, Const) and not s.value)


def event_types(node: Node) -> tuple[frozenset[str], bool]:
    """(named types the condition can match, whether it can also match unnamed types)."""
    named = frozenset(t for t in named_types(node) if can_match(node, t))
    return named, can_match(node, OTHER)
