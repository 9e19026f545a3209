"""Resolve: substitute lists, resolve macros, turn exceptions into conditions, locate errors.

Order of work for one load (Falco's): every macro is parsed once (so a broken macro is
reported even when no rule uses it); each enabled rule's condition is parsed, its macro
references are replaced by the macros' trees (cycles are errors), list names inside value
lists are replaced by the lists' items (lists inside lists too), ``exceptions:`` become
``and not (...)``, the whole tree is type-checked, and then it is specialised per event type
and compiled (sysward.rules.codegen).  sysward.rules.compiler runs these steps in that order;
this module holds the list, macro and exception steps and the error locator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sysward.rules.ast import (
    LIST_OPS,
    And,
    Compare,
    FieldRef,
    ListRef,
    ListValue,
    MacroRef,
    Node,
    Not,
    Or,
    Origin,
    Str,
    Transform,
)
from sysward.rules.codegen import CompileError
from sysward.rules.collector import Collection, ExceptionDef, MacroDef, RuleDef, Text
from sysward.rules.diagnostics import (
    LOAD_ERR_COMPILE_CONDITION,
    LOAD_ERR_EXCEPTION,
    Diagnostic,
    Position,
)
from sysward.rules.parser import ParseError, parse, parse_field


def text_origin(text: Text, label: str) -> Origin:
    return Origin(text.text, label, text.locate)


def diagnostic_for(exc: CompileError | ParseError, origin: Origin | None, label: str,
                   fallback: Position, code: str | None = None,
                   context: str = "") -> Diagnostic:
    """An error located at the node (or parse offset) it concerns."""
    if isinstance(exc, ParseError):
        assert origin is not None
        pos = origin.position(exc.offset)
        snippet = origin.snippet(exc.offset)
        message = f"syntax error in {origin.label}: {exc.message}"
        code = code or LOAD_ERR_COMPILE_CONDITION
    else:
        node = exc.node
        if node is not None and node.origin.text:
            pos = node.origin.position(node.pos)
            snippet = node.origin.snippet(node.pos)
            where = node.origin.label
        else:
            pos, snippet, where = fallback, "", label
        head, sep, tail = exc.message.partition("; ")
        message = head.rstrip(".")
        if where and where != label:
            message += f" in {where} (used by {label})"
        elif label:
            message += f" in {label}"
        if sep:
            message += sep + tail.rstrip(".")
        code = code or exc.code
    if context:
        message += context
    return Diagnostic(code, "error", message, pos.file, pos.line, pos.col, snippet, label)


@dataclass(slots=True)
class _MacroState:
    ast: Node | None = None
    error: Diagnostic | None = None
    resolving: bool = False
    resolved: Node | None = None


class Resolver:
    """Parses macros once and expands macros and lists inside rule conditions."""

    def __init__(self, col: Collection) -> None:
        self.col = col
        self.macros: dict[str, _MacroState] = {}
        self.diags: list[Diagnostic] = []
        self._list_cache: dict[str, tuple[str, ...]] = {}

    # -- lists -----------------------------------------------------------------------------
    def list_items(self, name: str, seen: frozenset[str] = frozenset()) -> tuple[str, ...]:
        cached = self._list_cache.get(name)
        if cached is not None:
            return cached
        ldef = self.col.lists[name]
        ldef.used = True
        out: list[str] = []
        for raw in ldef.items:
            if raw in self.col.lists and raw not in seen and raw != name:
                out.extend(self.list_items(raw, seen | {name}))
            else:
                out.append(_unquote(raw))
        result = tuple(out)
        self._list_cache[name] = result
        return result

    def _expand_values(self, lv: ListValue) -> ListValue:
        items: list[Str] = []
        changed = False
        for it in lv.items:
            if not it.quoted and it.value in self.col.lists:
                changed = True
                items.extend(Str(v, True, pos=it.pos, origin=it.origin)
                             for v in self.list_items(it.value))
            else:
                items.append(it)
        return ListValue(tuple(items), pos=lv.pos, origin=lv.origin) if changed else lv

    # -- macros ----------------------------------------------------------------------------
    def parse_macros(self) -> None:
        for name, mdef in self.col.macros.items():
            state = _MacroState()
            origin = text_origin(mdef.condition, f"macro '{name}'")
            try:
                state.ast = parse(mdef.condition.text, origin)
            except ParseError as exc:
                state.error = diagnostic_for(exc, origin, f"macro '{name}'", mdef.item.pos)
                self.diags.append(state.error)
            self.macros[name] = state

    def _macro(self, ref: MacroRef) -> Node:
        state = self.macros.get(ref.name)
        if state is None:
            raise CompileError(f"undefined macro '{ref.name}'", ref)
        mdef: MacroDef = self.col.macros[ref.name]
        mdef.used = True
        if state.error is not None or state.ast is None:
            raise CompileError(f"macro '{ref.name}' has a syntax error (reported at "
                               f"{state.error.file}:{state.error.line}:{state.error.col})"
                               if state.error else f"macro '{ref.name}' is broken", ref)
        if state.resolved is not None:
            return state.resolved
        if state.resolving:
            raise CompileError(f"macro '{ref.name}' refers to itself", ref)
        state.resolving = True
        try:
            state.resolved = self.expand(state.ast)
        finally:
            state.resolving = False
        return state.resolved

    # -- trees -----------------------------------------------------------------------------
    def expand(self, node: Node) -> Node:
        """Replace macro references by their trees and list names by their items."""
        if isinstance(node, MacroRef):
            return self._macro(node)
        if isinstance(node, And | Or):
            kids: list[Node] = []
            for c in node.children:
                e = self.expand(c)
                # flatten (a and (b and c)): keeps generated code shallow
                if type(e) is type(node):
                    kids.extend(e.children)
                else:
                    kids.append(e)
            return type(node)(tuple(kids), pos=node.pos, origin=node.origin)
        if isinstance(node, Not):
            return Not(self.expand(node.child), pos=node.pos, origin=node.origin)
        if isinstance(node, Compare):
            rhs = node.rhs
            if isinstance(rhs, ListValue):
                new = self._expand_values(rhs)
                if new is not rhs:
                    return Compare(node.lhs, node.op, new, pos=node.pos, origin=node.origin)
            elif isinstance(rhs, ListRef):
                if rhs.name not in self.col.lists:
                    raise CompileError(f"undefined list '{rhs.name}'", rhs)
                items = tuple(Str(v, True, pos=rhs.pos, origin=rhs.origin)
                              for v in self.list_items(rhs.name))
                return Compare(node.lhs, node.op, ListValue(items, pos=rhs.pos, origin=rhs.origin),
                               pos=node.pos, origin=node.origin)
        return node

    # -- exceptions ------------------------------------------------------------------------
    def exceptions(self, rule: RuleDef) -> Node | None:
        """The rule's exceptions as one tree, to be added as ``and not (...)``."""
        clauses: list[Node] = []
        for exc in rule.exceptions:
            clauses.extend(self._exception(rule, exc))
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else Or(tuple(clauses))

    def _exception(self, rule: RuleDef, exc: ExceptionDef) -> list[Node]:
        where = exc.item.pos_of("exceptions")
        origin = Origin(str(exc.fields), f"exception '{exc.name}' of rule '{rule.name}'",
                        lambda _offset: where)

        def fail(message: str) -> CompileError:
            e = CompileError(message, FieldRef("", pos=0, origin=origin), LOAD_ERR_EXCEPTION)
            return e

        def field(name: Any) -> FieldRef:
            if not isinstance(name, str):
                raise fail(f"exception '{exc.name}': fields must be field names, not {name!r}")
            try:
                return parse_field(name, origin)
            except ParseError as pe:
                raise fail(f"exception '{exc.name}': '{name}' is not a field name "
                           f"({pe.message})") from None

        def value(comp: str, raw: Any) -> Str | ListValue:
            if comp in LIST_OPS:
                if isinstance(raw, list):
                    items: list[str] = []
                    for v in raw:
                        sv = str(v)
                        if sv in self.col.lists:
                            items.extend(self.list_items(sv))
                        else:
                            items.append(sv)
                    return ListValue(tuple(Str(v, True, origin=origin) for v in items),
                                     origin=origin)
                sv = str(raw)
                if sv in self.col.lists:
                    return ListValue(tuple(Str(v, True, origin=origin)
                                           for v in self.list_items(sv)), origin=origin)
                return ListValue((Str(sv, True, origin=origin),), origin=origin)
            if isinstance(raw, list | dict):
                raise fail(f"exception '{exc.name}': operator '{comp}' needs a single value, "
                           f"got {raw!r}")
            return Str(_scalar(raw), True, origin=origin)

        if not exc.values:
            return []
        if isinstance(exc.fields, str):
            comp = exc.comps if isinstance(exc.comps, str) else "in"
            f = field(exc.fields)
            if comp in LIST_OPS:
                return [Compare(f, comp, value(comp, exc.values), origin=origin)]
            return [Compare(f, comp, value(comp, v), origin=origin) for v in exc.values]
        if not isinstance(exc.fields, list) or not exc.fields:
            raise fail(f"exception '{exc.name}' needs 'fields' (a field or a list of fields)")
        fields = [field(n) for n in exc.fields]
        comps = exc.comps if exc.comps is not None else ["="] * len(fields)
        if isinstance(comps, str) or not isinstance(comps, list) or len(comps) != len(fields):
            raise fail(f"exception '{exc.name}': 'comps' must list one operator per field "
                       f"({len(fields)})")
        out: list[Node] = []
        for tup in exc.values:
            if not isinstance(tup, list) or len(tup) != len(fields):
                raise fail(f"exception '{exc.name}': each value must list {len(fields)} "
                           f"item(s), one per field; got {tup!r}")
            checks = tuple(Compare(f, str(c), value(str(c), v), origin=origin)
                           for f, c, v in zip(fields, comps, tup, strict=True))
            out.append(checks[0] if len(checks) == 1 else And(checks, origin=origin))
        return out


def _scalar(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def _unquote(item: str) -> str:
    """List items written as '"(systemd)"' keep their quotes in YAML; Falco drops them."""
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'":
        return item[1:-1].replace("\\" + item[0], item[0])
    return item


def fields_in(node: Node) -> list[FieldRef]:
    out: list[FieldRef] = []

    def visit(n: Node) -> None:
        if isinstance(n, And | Or):
            for c in n.children:
                visit(c)
        elif isinstance(n, Not):
            visit(n.child)
        elif isinstance(n, Compare):
            for side in (n.lhs, n.rhs):
                while isinstance(side, Transform):
                    side = side.arg
                if isinstance(side, FieldRef):
                    out.append(side)

    visit(node)
    return out


__all__ = ["Resolver", "diagnostic_for", "text_origin", "fields_in"]
