"""Condition AST -> one Python function per (rule, event type), built once at load time.

Each comparison becomes a short Python expression over the event ``e`` -- extractor calls,
precomputed frozensets for ``in``, compiled regexes for ``glob``/``regex``, lowered constants
for ``icontains`` -- and ``and``/``or``/``not`` become Python's own short-circuit operators.
The expression is compiled with ``compile()`` into a lambda, so evaluating a rule costs one
Python call plus the work of its comparisons; no tree walking per event.

Falco's missing-value semantics: an extractor returns None (or an empty tuple for lists and
"any of" fields) when the event lacks the value; every comparison on it is then false, so
``not x = y`` is true and ``x exists`` is false.  The generated code tests for None before
any operation that could fail on it and relies on Python truthiness (None and () are falsy).

One module per job: ``values`` (kinds, constants parsed as the field's type), ``operators``
(the one table of operator semantics, and the matchers the generated code calls),
``typecheck`` (which operands an operator takes), ``inline`` (a field's per-type expression
pasted in), ``matcher`` (the generator itself: trees -> source -> functions).
"""

from __future__ import annotations

from sysward.rules.codegen.errors import CompileError, Failure, Registry
from sysward.rules.codegen.matcher import CodeGen, Predicate
from sysward.rules.codegen.operators import OPERATORS, Operator, path_prefix_matcher
from sysward.rules.codegen.values import field_kind

__all__ = ["OPERATORS", "CodeGen", "CompileError", "Failure", "Operator", "Predicate",
           "Registry", "field_kind", "path_prefix_matcher"]
