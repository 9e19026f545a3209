"""Conditions as the kernel tables hold them: one lowering, rounded two ways.

A condition (already specialised per event type by the rule engine, so ``evt.type`` is
folded away) becomes a disjunction of *clauses*, each a conjunction of kernel *literals*
(a test the kernel can make, positive or negated).  Negations are pushed down to the leaves
first (``not (a and b)`` is ``not a or not b``), so every leaf is met knowing whether it is
negated.  Each use supplies the leaf function that turns one comparison into a literal.

What the kernel cannot decide is rounded by the caller's need:

* ``Rounding.EXACT`` (enforcement, ``action: kill|deny``): the kernel must decide exactly;
  a leaf it cannot test, or a condition with too many alternatives, is an error.
* ``Rounding.OVER`` (the prefilter): the kernel must pass every event some rule *could*
  match; a leaf it cannot test counts as "may match" (true, whether it was negated or not),
  and a conjunction with too many alternatives drops its widest parts (each dropped part
  is replaced by true).  The result is weaker than the condition: a sound
  over-approximation.

The enforcement compiler is ``sysward.enforce.compiler``; the prefilter's is
``sysward.enforce.prefilter.compiler`` (its leaves: ``sysward.enforce.prefilter.atoms``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from sysward.rules.ast import And, Compare, Const, Node, Not, Or, to_text


class Rounding(enum.Enum):
    EXACT = "exact"  # unknown refuses (enforcement)
    OVER = "over"  # unknown may match (prefilter)


class Undecidable(Exception):
    """A part of a condition the kernel cannot test; the message names it."""


#: (test, positive): what one leaf becomes
Literal = tuple[Any, bool]
Clause = list[Literal]
#: (comparison, negated) -> a literal, or a constant when the leaf is known at load time, or
#: an equivalent condition over tests the kernel can make (lowered in its place, with the
#: same negation: a field that is two kernel tests at once, such as fd.filename of an open)
Leaf = Callable[[Compare, bool], "Literal | bool | Node"]

TRUE: list[Clause] = [[]]
FALSE: list[Clause] = []


def lower(node: Node, leaf: Leaf, rounding: Rounding, limit: int) -> list[Clause]:
    """The clauses of ``node``; [] is false, [[]] is true.

    EXACT raises Undecidable for what the kernel cannot decide or for more than ``limit``
    alternatives; OVER never raises and returns at most ``limit`` clauses.
    """
    return _lower(node, False, leaf, rounding, limit)


def _lower(node: Node, neg: bool, leaf: Leaf, rounding: Rounding, limit: int) -> list[Clause]:
    if isinstance(node, Const):
        return TRUE if node.value != neg else FALSE
    if isinstance(node, Not):
        return _lower(node.child, not neg, leaf, rounding, limit)
    if isinstance(node, And | Or):
        conj = isinstance(node, And) != neg  # de Morgan: a negated 'or' is an 'and'
        parts = [_lower(c, neg, leaf, rounding, limit) for c in node.children]
        return _conjoin(node, parts, rounding, limit) if conj else _disjoin(node, parts,
                                                                               rounding, limit)
    if isinstance(node, Compare):
        try:
            lit = leaf(node, neg)
        except Undecidable:
            if rounding is Rounding.EXACT:
                raise
            return TRUE
        if isinstance(lit, bool):
            return TRUE if lit else FALSE
        if isinstance(lit, Node):
            return _lower(lit, neg, leaf, rounding, limit)
        return [[lit]]
    if rounding is Rounding.EXACT:
        raise Undecidable(f"'{to_text(node)}' is not a test the kernel can make")
    return TRUE


def _too_many(node: Node) -> Undecidable:
    return Undecidable(f"'{to_text(node)}' expands to more than the alternatives the kernel "
                       "tables hold")


def _conjoin(node: Node, parts: list[list[Clause]], rounding: Rounding,
             limit: int) -> list[Clause]:
    if any(not p for p in parts):
        return FALSE
    parts = [p for p in parts if p != TRUE]
    if rounding is Rounding.OVER:
        # drop the widest parts (each becomes true) until the product fits
        size = 1
        for p in parts:
            size *= len(p)
        while size > limit:
            widest = max(range(len(parts)), key=lambda i: len(parts[i]))
            size //= len(parts[widest])
            del parts[widest]
    out: list[Clause] = [[]]
    for p in parts:
        out = [a + b for a in out for b in p]
        if len(out) > limit:
            raise _too_many(node)
    return out


def _disjoin(node: Node, parts: list[list[Clause]], rounding: Rounding,
             limit: int) -> list[Clause]:
    out: list[Clause] = []
    for p in parts:
        if p == TRUE:
            return TRUE
        out.extend(p)
    if len(out) > limit:
        if rounding is Rounding.EXACT:
            raise _too_many(node)
        return TRUE
    return out


__all__ = ["Clause", "Literal", "Rounding", "TRUE", "FALSE", "Undecidable", "lower"]
