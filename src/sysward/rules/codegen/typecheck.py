"""Type checking: which operands an operator accepts, and the error naming what is wrong.

The generator calls these before it emits a comparison, so a rule with a type error never
loads, and its diagnostic points at the comparison (``operator '>' needs a numeric field,
but 'proc.name' is a string``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sysward.rules.ast import Compare, FieldRef, ListValue, Str, Transform
from sysward.rules.codegen.errors import CompileError
from sysward.rules.codegen.operators import OPERATORS, Operator
from sysward.rules.codegen.values import article


class Operand:
    """A field (or a transform of one) as the generator sees it."""

    __slots__ = ("expr", "kind", "multi", "render", "text")

    def __init__(self, expr: str, kind: str, multi: bool, render: Callable[[Any], str] | None,
                 text: str) -> None:
        self.expr = expr  # Python expression producing the value from ``e``
        self.kind = kind  # str num bool ip net list
        self.multi = multi  # "any of" candidates (a tuple)
        self.render = render  # how a non-string value prints (string operators use it)
        self.text = text


def const_operator(node: Compare, op: str, kind: str, lhs: Operand) -> Operator:
    """The operator of ``field OP constant(s)``, checked against the field's kind."""
    spec = OPERATORS.get(op)
    if spec is None:
        raise CompileError(f"unknown operator '{op}'", node)
    if spec.family == "string" and kind != "str" and (lhs.render is None or kind == "bool"):
        raise CompileError(f"operator '{op}' needs a string field, but '{lhs.text}' is "
                           f"{article(kind)}", node)
    # Falco orders strings too (byte order): "fd.name < 1", "proc.name >= x"
    if spec.family == "number" and kind not in ("num", "str"):
        raise CompileError(f"operator '{op}' needs a numeric or string field, but "
                           f"'{lhs.text}' is {article(kind)}", node)
    if spec.family == "path" and kind != "str":
        raise CompileError(f"operator 'pmatch' needs a path (string) field, but "
                           f"'{lhs.text}' is {article(kind)}", node)
    return spec


def single(node: Compare, op: str, rhs: Any, what: str) -> Str:
    """The one constant an operator takes (``what`` says which kind, for the error)."""
    if not isinstance(rhs, Str):
        raise CompileError(f"operator '{op}' needs {what}", node)
    return rhs


def items(node: Compare, rhs: Any) -> tuple[Str, ...]:
    if isinstance(rhs, ListValue):
        return rhs.items
    if isinstance(rhs, Str):
        return (rhs,)
    raise CompileError(f"operator '{node.op}' needs a list of values", node)


def val_test(node: Compare, op: str, lhs: Operand, rhs: Operand) -> str:
    """The test template of ``field OP val(other)``, checked against both fields."""
    if lhs.multi or rhs.multi or lhs.kind == "list" or rhs.kind == "list":
        raise CompileError("val() cannot compare list or 'any of' fields", node)
    if lhs.kind != rhs.kind:
        raise CompileError(f"cannot compare '{lhs.text}' ({lhs.kind}) with "
                           f"'{rhs.text}' ({rhs.kind})", node)
    spec = OPERATORS.get(op)
    if spec is not None and spec.family in ("equality", "set") and spec.val_test is not None:
        return spec.val_test
    if spec is not None and spec.family == "number":
        if lhs.kind not in ("num", "str"):
            raise CompileError(f"operator '{op}' needs numeric or string fields", node)
        assert spec.val_test is not None
        return spec.val_test
    if lhs.kind != "str":
        raise CompileError(f"operator '{op}' needs string fields", node)
    if spec is None or spec.val_test is None:
        raise CompileError(f"operator '{op}' cannot take val() (Falco refuses it too)", node)
    return spec.val_test


def no_evt_type(node: Compare) -> None:
    """Falco compares evt.type only with event names: no transformer, no val(), either side
    (and sysward's event-type index only understands that form)."""
    def is_type(n: Any) -> bool:
        while isinstance(n, Transform):
            n = n.arg
        return isinstance(n, FieldRef) and n.name == "evt.type"

    lhs, rhs = node.lhs, node.rhs
    if (isinstance(lhs, Transform) and is_type(lhs)) or (
            isinstance(rhs, FieldRef | Transform) and (is_type(lhs) or is_type(rhs))):
        raise CompileError("evt.type can only be compared with event names, not transformed "
                           "or compared with val() (Falco refuses it too)", node)


def transform_kind(func: str, inner: Operand, node: Any) -> str:
    """The kind a transform gives; only string and list fields can be transformed."""
    if inner.kind not in ("str", "list"):
        raise CompileError(f"{func}() needs a string field, but '{inner.text}' is "
                           f"{article(inner.kind)}", node)
    if func == "len":
        return "num"
    return "list" if inner.kind == "list" else "str"
