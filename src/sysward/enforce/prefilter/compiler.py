"""Rules -> approvers: per event type, the clauses the kernel evaluates before it builds a record.

For each attached event type, every enabled rule's condition specialised for that type is
lowered with ``Rounding.OVER`` (sysward.enforce.kcond): a disjunction of clauses over the
atoms of sysward.enforce.prefilter.atoms, weaker than the condition.  An event passes when
some clause of some rule holds, so whenever a rule could match, the kernel passes the event.

A type *passes everything* (no filtering) when the process table needs its events
(``STATE_TYPES``), when some rule has a clause with no kernel test left (its condition rests
on fields the kernel cannot see), or when the clauses do not fit the kernel tables.  The
reasons are kept for ``sysward rules explain``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sysward.enforce.kcond import Rounding, lower
from sysward.enforce.prefilter.atoms import Feature, IntTest, Kind, SetTest, leaf
from sysward.events.types import EVENT_TYPES

#: clauses per event type (one bit each in the kernel's masks)
MAX_CLAUSES = 64
#: feature bits per event type (the allow table has 2**MAX_FEATURES entries)
MAX_FEATURES = 8
#: alternatives one rule may expand to before its widest parts are dropped
RULE_LIMIT = 32

#: event types the agent's own state needs whatever the rules say: the process table is
#: built from process creation, exec and exit, and follows cwd, ids and capabilities
STATE_TYPES: frozenset[str] = frozenset(t.name for t in EVENT_TYPES if t.proctable or t.state)


@dataclass(slots=True)
class Clause:
    """One alternative: every feature literal and set test must hold."""

    rule: str
    feats: list[tuple[IntTest, bool]] = field(default_factory=list)
    pos: dict[Kind, SetTest] = field(default_factory=dict)
    neg: dict[Kind, set[Any]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # tests left out (kept as "may match")

    def key(self) -> tuple[Any, ...]:
        return (tuple(sorted((repr(t.anyof), p) for t, p in self.feats)),
                tuple(sorted((k, t.values) for k, t in self.pos.items())),
                tuple(sorted((k, frozenset(v)) for k, v in self.neg.items())))

    def describe(self) -> str:
        parts = [("" if p == t.text_positive else "not ") + t.text for t, p in self.feats]
        parts += [t.text for t in self.pos.values()]
        parts += [f"not {k.name.lower()} in ({len(v)} values)" for k, v in self.neg.items()]
        return " and ".join(parts) or "true"


@dataclass(slots=True)
class TypeFilter:
    """The approver of one event type."""

    evt: str
    passes_all: bool = False
    reason: str = ""  # why it passes everything
    clauses: list[Clause] = field(default_factory=list)
    features: list[Feature] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    #: rule -> the parts of its condition the kernel cannot test (left to user space)
    left: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Approvers:
    by_type: dict[str, TypeFilter] = field(default_factory=dict)

    def filtered_types(self) -> list[str]:
        return sorted(t for t, f in self.by_type.items() if not f.passes_all)


def _clause(rule: str, lits: Sequence[tuple[Any, bool]]) -> Clause:
    c = Clause(rule)
    for test, positive in lits:
        if isinstance(test, IntTest):
            c.feats.append((test, positive))
            continue
        assert isinstance(test, SetTest)
        if positive:
            if test.kind in c.pos:
                # one positive test per kind and clause: the others are left out (weaker)
                if c.pos[test.kind].values != test.values:
                    c.dropped.append(test.text)
            else:
                c.pos[test.kind] = test
            if test.names is not None and Kind.NAME not in c.pos:
                c.pos[Kind.NAME] = SetTest(Kind.NAME, test.names, f"base name of {test.text}")
        else:
            c.neg.setdefault(test.kind, set()).update(test.values)
    return c


def _undecided(tree: Any, evt: str) -> list[str]:
    """The comparisons of ``tree`` the kernel cannot test for ``evt`` (for explain)."""
    from sysward.enforce.kcond import Undecidable
    from sysward.rules.ast import Compare, to_text, walk

    one = leaf(evt)
    out: list[str] = []
    for n in walk(tree):
        if isinstance(n, Compare):
            try:
                one(n, False)
            except Undecidable:
                text = to_text(n)
                if text not in out:
                    out.append(text)
    return out


def compile_type(evt: str, rules: Iterable[Any]) -> TypeFilter:
    tf = TypeFilter(evt)
    if evt in STATE_TYPES:
        tf.passes_all = True
        tf.reason = "the process table needs every event of this type"
    one = leaf(evt)
    clauses: dict[tuple[Any, ...], Clause] = {}
    for rule in rules:
        tree = rule.condition_for(evt)
        if tree is None:
            continue
        tf.rules.append(rule.name)
        left = _undecided(tree, evt)
        if left:
            tf.left[rule.name] = left
        alts = lower(tree, one, Rounding.OVER, RULE_LIMIT)
        for lits in alts:
            c = _clause(rule.name, lits)
            if not c.feats and not c.pos and not c.neg and not tf.passes_all:
                tf.passes_all = True
                tf.reason = (f"rule '{rule.name}' can match {evt} events the kernel cannot tell "
                             "apart (no test of its condition is one the kernel makes)")
            clauses.setdefault(c.key(), c)
    tf.clauses = list(clauses.values())
    if not tf.passes_all and len(tf.clauses) > MAX_CLAUSES:
        needed = len(tf.clauses)
        tf.clauses = _fit(tf.clauses)
        tf.left.setdefault("(all rules)", []).append(
            f"{needed} alternatives merged into {len(tf.clauses)} (the kernel holds "
            f"{MAX_CLAUSES}): the merged ones test only what they share")
    _choose_features(tf)
    if not tf.passes_all and len(tf.clauses) > MAX_CLAUSES:
        tf.passes_all = True
        tf.reason = (f"the rules need {len(tf.clauses)} alternatives for {evt}; the kernel "
                     f"tables hold {MAX_CLAUSES}")
    return tf


def _join(a: Clause, b: Clause) -> Clause:
    """A clause that holds whenever ``a`` or ``b`` does (weaker than both): the integer
    literals they share, positive sets united per kind, negative sets intersected."""
    c = Clause(a.rule if a.rule == b.rule else f"{a.rule} | {b.rule}")
    bf = set(b.feats)
    c.feats = [f for f in a.feats if f in bf]
    for kind in a.pos.keys() & b.pos.keys():
        ta, tb = a.pos[kind], b.pos[kind]
        names = None
        if ta.names is not None and tb.names is not None:
            names = ta.names | tb.names
        c.pos[kind] = SetTest(kind, ta.values | tb.values, f"{ta.text} or {tb.text}", names)
    for kind in a.neg.keys() & b.neg.keys():
        common = a.neg[kind] & b.neg[kind]
        if common:
            c.neg[kind] = common
    return c


def _fit(clauses: list[Clause]) -> list[Clause]:
    """At most MAX_CLAUSES clauses: drop those implied by a weaker one, then merge the pairs
    that keep the most tests until the rest fits (each merge is weaker than what it
    replaces, so the kernel still passes whatever a rule could match)."""
    out = list(clauses)
    feats = [set(c.feats) for c in out]
    while len(out) > MAX_CLAUSES:
        best: tuple[int, int, int] | None = None
        for i in range(len(out)):
            a, fa = out[i], feats[i]
            for j in range(i + 1, len(out)):
                b = out[j]
                score = (len(fa & feats[j]) + len(a.pos.keys() & b.pos.keys())
                         + sum(1 for k in a.neg.keys() & b.neg.keys() if a.neg[k] & b.neg[k]))
                if best is None or score > best[0]:
                    best = (score, i, j)
        assert best is not None
        _, i, j = best
        merged = _join(out[i], out[j])
        out = [c for k, c in enumerate(out) if k not in (i, j)] + [merged]
        feats = [f for k, f in enumerate(feats) if k not in (i, j)] + [set(merged.feats)]
    return out


def _choose_features(tf: TypeFilter) -> None:
    """At most MAX_FEATURES feature bits: literals on the rarest others are left out."""
    count: Counter[Feature] = Counter()
    for c in tf.clauses:
        for t, _ in c.feats:
            count.update(t.anyof)
    keep = [f for f, _ in count.most_common(MAX_FEATURES)]
    kept = set(keep)
    for c in tf.clauses:
        ok = []
        for t, p in c.feats:
            if all(f in kept for f in t.anyof):
                ok.append((t, p))
            else:
                c.dropped.append(t.text)
        c.feats = ok
    tf.features = keep
    # a clause with nothing left passes every event
    if not tf.passes_all and any(not c.feats and not c.pos and not c.neg for c in tf.clauses):
        tf.passes_all = True
        tf.reason = "more integer tests than the kernel's feature bits"


def compile_approvers(rules: Sequence[Any], types: Iterable[str]) -> Approvers:
    """The approver of each of ``types`` (the attached event types) from ``rules``."""
    out = Approvers()
    for evt in sorted(set(types)):
        out.by_type[evt] = compile_type(evt, rules)
    return out


__all__ = ["Approvers", "Clause", "MAX_CLAUSES", "MAX_FEATURES", "STATE_TYPES", "TypeFilter",
           "compile_approvers", "compile_type"]
