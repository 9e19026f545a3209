"""Matcher building: condition trees -> one Python function per (rule, event type).

Each comparison becomes a short Python expression over the event ``e`` (the operator table,
sysward.rules.codegen.operators, gives its test) and ``and``/``or``/``not`` become Python's
own short-circuit operators.  The source is compiled once, at load time; a matcher for one
event type evaluates all the rules of that type with every field extracted at most once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sysward.rules.ast import (
    And,
    Call,
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
)
from sysward.rules.codegen.errors import CompileError, Failure, Registry
from sysward.rules.codegen.inline import expand
from sysward.rules.codegen.operators import any_of, ip_any, ip_matcher, path_prefix_matcher
from sysward.rules.codegen.typecheck import (
    Operand,
    const_operator,
    items,
    no_evt_type,
    single,
    transform_kind,
    val_test,
)
from sysward.rules.codegen.values import (
    TRANSFORM_FUNCS,
    article,
    each,
    field_kind,
    getopt,
    none_safe,
    parse_constant,
    parse_number,
    text_of,
)
from sysward.rules.fieldtypes import UnknownFieldError

Predicate = Callable[[Any], Any]
#: a rule while its matcher is generated: (index, name of its value, conjuncts left to test)
_Item = tuple[int, str, tuple[Node, ...]]


class CodeGen:
    """Turns condition trees into Python lambdas; shared by all rules of one load."""

    def __init__(self, registry: Registry, filename: str = "<sysward-rules>") -> None:
        self.registry = registry
        self.ns: dict[str, Any] = {"__builtins__": {"any": any, "len": len, "int": int, "str": str}}
        self.filename = filename
        self._names: dict[Any, str] = {}  # (kind, key) -> namespace name, to share constants
        self._n = 0
        self._fields: dict[tuple[str, str | None], Any] = {}
        self._fn_cache: dict[str, Predicate] = {}
        # while generating a per-type matcher: extractor name -> local caching its value
        self._lazy: dict[str, str] | None = None
        self.ns["_U"] = _UNSET
        # while generating a per-type matcher: id(subtree) -> key of subtrees used by 2+ rules,
        # and key -> local caching that subtree's truth value for the current event
        self._shared: dict[int, str] = {}
        self._shared_names: dict[str, str] = {}
        # while generating a per-type matcher: its event type, and the inline source of each
        # field for that type (None: the field has none and its extractor is called)
        self._evt_type: str | None = None
        self._inline: dict[tuple[tuple[str, Any], frozenset[str]], str | None] = {}
        self._expanding: set[tuple[str, Any]] = set()
        # while generating a per-type matcher: the locals known to hold their field's value
        # at the point being generated (no test needed), the local of each field read so
        # far, and the (key, local, source) of the last field read
        self._known: set[str] = set()
        self._ref_keys: dict[tuple[str, str | None], str] = {}
        self._last_field: tuple[str, str, str] | None = None

    # -- namespace ---------------------------------------------------------------------------
    def bind(self, value: Any, key: Any = None) -> str:
        if key is not None:
            name = self._names.get(key)
            if name is not None:
                return name
        self._n += 1
        name = f"_k{self._n}"
        self.ns[name] = value
        if key is not None:
            self._names[key] = name
        return name

    def resolve(self, ref: FieldRef) -> Any:
        key = (ref.name, ref.arg)
        bound = self._fields.get(key)
        if bound is None:
            try:
                bound = self.registry.resolve(ref.name, ref.arg)
            except UnknownFieldError as exc:
                raise CompileError(str(exc), ref, failure=Failure.UNKNOWN_FIELD) from None
            except ValueError as exc:  # FieldError is a ValueError
                raise CompileError(str(exc), ref) from None
            self._fields[key] = bound
        return bound

    # -- functions ---------------------------------------------------------------------------
    def function(self, node: Node) -> Predicate:
        """A callable ``f(event) -> truthy`` for the tree (compiled once per distinct source)."""
        if isinstance(node, Const):
            return _always_true if node.value else _always_false
        src = "lambda e: " + self.expr(node)
        fn = self._fn_cache.get(src)
        if fn is None:
            try:
                code = compile(src, self.filename, "eval")
            except (SyntaxError, RecursionError, MemoryError) as exc:
                raise CompileError(f"condition too complex to compile ({type(exc).__name__})",
                                   node) from None
            fn = eval(code, self.ns)  # noqa: S307 - our own generated source
            self._fn_cache[src] = fn
        return fn

    def matcher(self, entries: list[tuple[Any, Node]],
                evt_type: str | None = None) -> Callable[[Any], list[Any]]:
        """One function evaluating several rules' trees on an event.

        ``entries`` are (value to report, tree); the values of the trees that hold are
        returned in the order of ``entries``.  Every field is extracted at most once per
        event and only when a rule needs it: its value is kept in a local shared by all
        the rules (``_aN``), which is what makes many rules on one event type cheap.  With
        ``evt_type`` (every event given to the function has that type), fields that can be
        written out for the type are pasted in as expressions instead of extractor calls.
        Rules that open with the same test share one ``if`` on it (see ``_emit``).
        """
        self._lazy = {}
        self._evt_type = evt_type
        self._inline = {}
        self._shared = _shared_subtrees([tree for _, tree in entries])
        self._shared_names = {}
        self._known = set()
        self._ref_keys = {}
        order = {value: i for i, (value, _) in enumerate(entries)}
        try:
            items: list[_Item] = []
            for i, (value, tree) in enumerate(entries):
                if isinstance(tree, Const) and not tree.value:
                    continue
                kids: tuple[Node, ...] = (() if isinstance(tree, Const) else
                                          tree.children if isinstance(tree, And) else (tree,))
                items.append((i, self.bind(value), _factor_ors(kids)))
            body: list[str] = []
            fired: list[int] = []
            self._emit(items, body, fired, "    ", 0)
        finally:
            self._lazy = None
            self._evt_type = None
            self._inline = {}
            self._shared = {}
            self._shared_names = {}
            self._known = set()
            self._ref_keys = {}
        head = ["def _m(e, _U=_U):", "    r = []"]
        body = _with_initial_values(body)
        tail = []
        if fired != sorted(fired):  # rules sharing a test were moved together: load order
            tail.append(f"    if len(r) > 1:\n        r.sort(key={self.bind(order)}.__getitem__)")
        src = "\n".join(head + body + tail + ["    return r"]) + "\n"
        local: dict[str, Any] = {}
        try:
            code = compile(src, self.filename, "exec")
        except (SyntaxError, RecursionError, MemoryError) as exc:
            raise CompileError(
                f"rules too complex to compile together ({type(exc).__name__})") from None
        exec(code, self.ns, local)  # noqa: S102 - our own generated source
        fn: Callable[[Any], list[Any]] = local["_m"]
        return fn

    def _emit(self, items: list[_Item], body: list[str], fired: list[int], indent: str,
              depth: int) -> None:
        """The statements testing ``items`` (index, bound value, conjuncts left to test).

        Rules that have a conjunct of the same text among their next few share one ``if``
        on it and continue inside it: Falco's rules of one event type mostly open with the
        same macros (``open_write and fd.typechar = 'f' and fd.num >= 0``), which are then
        tested once per event instead of once per rule.  (Taking a leading conjunct out of
        its place changes no truth value: the tests are pure.)  Every statement of a block
        runs whenever the block does, and each begins by reading the field its first
        comparison reads: those fields are computed once at the block's start, and read as
        plain locals in it.
        """
        known_before = set(self._known)
        plan: list[tuple[Node | None, list[_Item]]] = []  # (shared test, its rules)
        rest = list(items)
        while rest:
            candidates: dict[str, tuple[Node, list[_Item]]] = {}
            if depth < _MAX_DEPTH:
                for item in rest:
                    for c in dict.fromkeys(item[2][:_LOOKAHEAD]):
                        entry = candidates.setdefault(_text(c), (c, []))
                        if item not in entry[1]:
                            entry[1].append(item)
            best = max(candidates.values(), key=lambda e: len(e[1]), default=None)
            if best is None or len(best[1]) < 2:
                plan.extend((None, [item]) for item in rest)
                break
            text = _text(best[0])
            plan.append((best[0], [(i, name, _without(kids, text)) for i, name, kids in best[1]]))
            rest = [item for item in rest if item not in best[1]]
        for test, members in plan:
            first = test if test is not None else (members[0][2][0] if members[0][2] else None)
            ref = _lhs_ref(first) if first is not None else None
            if ref is not None:
                self._precompute(ref, body, indent)
        for test, members in plan:
            if test is None:
                i, name, kids = members[0]
                if not kids:
                    body.append(f"{indent}r.append({name})")
                else:
                    node = (kids[0] if len(kids) == 1 else
                            And(kids, pos=kids[0].pos, origin=kids[0].origin))
                    body.append(f"{indent}if {self.expr(node)}:\n{indent}    r.append({name})")
                fired.append(i)
                continue
            body.append(f"{indent}if {self.expr(test)}:")
            self._emit(members, body, fired, indent + "    ", depth + 1)
        self._known = known_before

    def _precompute(self, ref: FieldRef, body: list[str], indent: str) -> None:
        """Compute ``ref`` here, into its local, and read it as that local from now on."""
        key = self._ref_keys.get((ref.name, ref.arg))
        if key is not None and key in self._known:
            return
        seen = set(self._lazy or ())
        self._last_field = None
        self.operand(ref)  # for its source: the expression itself is not used
        if self._last_field is None or self._lazy is None:
            return
        key, local, src = self._last_field
        if key in self._known:
            return
        if key in seen:  # read before: computed already unless that read was skipped
            body.append(f"{indent}if {local} is _U:\n{indent}    {local} = {src}")
        else:
            body.append(f"{indent}{local} = {src}")
        self._known.add(key)

    def value_function(self, ref: FieldRef, evt_type: str | None = None) -> Callable[[Any], Any]:
        """``f(event) -> value`` of one field, extracted the way a matcher for ``evt_type``
        extracts it (inline source where the field has one): what tests compare with the
        field's generic extractor."""
        self._lazy = {}
        self._evt_type = evt_type
        self._inline = {}
        try:
            expr = self.operand(ref).expr
            lazies = list(self._lazy.values())
        finally:
            self._lazy = None
            self._evt_type = None
            self._inline = {}
        head = "    " + " = ".join(lazies) + " = _U\n" if lazies else ""
        src = f"def _f(e, _U=_U):\n{head}    return {expr}\n"
        local: dict[str, Any] = {}
        exec(compile(src, self.filename, "exec"), self.ns, local)  # noqa: S102 - ours
        fn: Callable[[Any], Any] = local["_f"]
        return fn

    def _field_expr(self, key: str, src: str, ref: tuple[str, str | None] | None = None) -> str:
        if self._lazy is None:
            return src
        local = self._lazy.get(key)
        if local is None:
            local = self._lazy[key] = f"_a{len(self._lazy)}"
        if ref is not None:
            self._ref_keys[ref] = key
        self._last_field = (key, local, src)
        if key in self._known:
            return local
        return f"({local} if {local} is not _U else ({local} := {src}))"

    def _inline_src(self, bound: Any) -> str | None:
        """The field's inline expression for the matcher's event type, or None."""
        fdef = getattr(bound, "definition", None)
        if self._evt_type is None or fdef is None or fdef.inline is None:
            return None
        field = (fdef.name, bound.arg)
        if field in self._expanding:  # a field whose inline source names itself gets a call
            return None
        # the source reads the fields it names as plain locals where they are known to be
        # computed: it holds for the places with the same known locals
        key = (field, frozenset(self._known))
        if key in self._inline:
            return self._inline[key]
        spec = fdef.inline(bound.arg, self._evt_type)
        if spec is None:
            self._inline[key] = None
            return None
        self._n += 1
        self._expanding.add(field)
        try:
            src = expand(spec, f"_t{self._n}", lambda name: self.operand(FieldRef(name)).expr,
                         self.bind)
        finally:
            self._expanding.discard(field)
        self._inline[key] = src
        return src

    def check(self, node: Node) -> None:
        """Type-check the whole tree (all branches) without compiling it."""
        self.expr(node)

    # -- expressions -------------------------------------------------------------------------
    def expr(self, node: Node) -> str:
        key = self._shared.get(id(node)) if self._shared else None
        if key is not None:
            local = self._shared_names.get(key)
            if local is None:
                local = self._shared_names[key] = f"_b{len(self._shared_names)}"
            return f"({local} if {local} is not _U else ({local} := {self._expr(node)}))"
        return self._expr(node)

    def _expr(self, node: Node) -> str:
        if isinstance(node, Or):
            return "(" + " or ".join(self._or_parts(node)) + ")"
        if isinstance(node, And):
            return "(" + " and ".join(self._and_parts(node)) + ")"
        if isinstance(node, Not):
            return f"(not {self.expr(node.child)})"
        if isinstance(node, Const):
            return "True" if node.value else "False"
        if isinstance(node, Compare):
            return self.compare(node)
        raise CompileError(f"unexpected {type(node).__name__} in a condition", node)

    # -- keyed guards ------------------------------------------------------------------------
    # Falco rules end in long chains of exclusions, ``not (proc.name = x and fd.name = y)``,
    # one per known-good program.  Each clause is false unless the field has one of a few
    # values, so clauses keyed on the same field are grouped behind one set lookup: when the
    # value is none of the keys (the common case) the whole group is decided at once, and
    # otherwise only the clauses keyed on that value are evaluated.  The dual applies to
    # ``(proc.name = x and ...) or (proc.name = y and ...)`` inside an ``or``.

    def _key_of(self, node: Node) -> tuple[tuple[str, str | None], frozenset[str]] | None:
        """(field, constants) when ``node`` is ``F = c`` / ``F in (...)`` on a plain string
        field: the node is false unless F's value is one of the constants."""
        if not (isinstance(node, Compare) and isinstance(node.lhs, FieldRef)
                and node.op in ("=", "==", "in") and isinstance(node.rhs, Str | ListValue)):
            return None
        try:
            bound = self.resolve(node.lhs)
        except CompileError:
            return None
        if field_kind(bound) != "str" or getattr(bound, "multi", False):
            return None
        rhs = node.rhs
        values = [rhs.value] if isinstance(rhs, Str) else [i.value for i in rhs.items]
        return (node.lhs.name, node.lhs.arg), frozenset(values)

    def _clause_key(self, node: Node) -> tuple[tuple[str, str | None], frozenset[str]] | None:
        """The key guarding ``node``: its own, or that of the first keyed child of an and."""
        key = self._key_of(node)
        if key is not None or not isinstance(node, And):
            return key
        for c in node.children:
            key = self._key_of(c)
            if key is not None:
                return key
        return None

    def _keyed(self, children: tuple[Node, ...], negated: bool) -> list[Any]:
        """Children in order, those sharing a guard field collected into one group (a tuple
        of (field, [(keys, child)]) at the place of the group's first member)."""
        groups: dict[tuple[str, str | None], list[tuple[frozenset[str], Node]]] = {}
        keyed: list[tuple[tuple[str, str | None], frozenset[str]] | None] = []
        for c in children:
            inner = c.child if negated and isinstance(c, Not) else (None if negated else c)
            key = self._clause_key(inner) if inner is not None else None
            keyed.append(key)
            if key is not None:
                groups.setdefault(key[0], []).append((key[1], c))
        order: list[Any] = []
        placed: set[tuple[str, str | None]] = set()
        for c, key in zip(children, keyed, strict=True):
            if key is None or len(groups[key[0]]) < 2:
                order.append(c)
            elif key[0] not in placed:
                placed.add(key[0])
                order.append((key[0], groups[key[0]]))
        return order

    def _group_expr(self, fkey: tuple[str, str | None],
                    members: list[tuple[frozenset[str], Node]], negated: bool) -> str:
        self._n += 1
        g = f"_g{self._n}"
        fexpr = self.operand(FieldRef(fkey[0], fkey[1])).expr
        every = self.bind(frozenset().union(*(k for k, _ in members)))
        known = set(self._known)
        self._learn(fkey)  # the members run after the guard read the field
        try:
            if negated:  # and-chain of "not (F in K and ...)": true unless F is a key
                parts = [f"({g} not in {self.bind(k)} or {self.expr(c)})" for k, c in members]
                return f"(({g} := {fexpr}) not in {every} or ({' and '.join(parts)}))"
            parts = [f"({g} in {self.bind(k)} and {self.expr(c)})" for k, c in members]
            return f"(({g} := {fexpr}) in {every} and ({' or '.join(parts)}))"
        finally:
            self._known = known

    def _and_parts(self, node: And) -> list[str]:
        parts = []
        known = set(self._known)
        for item in self._keyed(node.children, negated=True):
            if isinstance(item, tuple):
                parts.append(self._group_expr(item[0], item[1], negated=True))
                self._learn(item[0])
            else:
                parts.append(self.expr(item))
                ref = _lhs_ref(item)
                if ref is not None:
                    self._learn((ref.name, ref.arg))
        self._known = known
        return parts

    def _learn(self, ref: tuple[str, str | None]) -> None:
        """The part just generated read ``ref`` first, whatever its value: the parts after
        it in its ``and``/``or`` (evaluated left to right, only after it) read the local."""
        if self._lazy is None:
            return
        key = self._ref_keys.get(ref)
        if key is not None:
            self._known.add(key)

    def _or_parts(self, node: Or) -> list[str]:
        """Children of an ``or``; tests of one string field against several constants with
        the same operator (=, in, startswith, endswith) are merged into one test, and
        ``and`` children guarded by the same field are grouped (see keyed guards)."""
        groups: dict[tuple[str, str | None, str], list[Compare]] = {}
        order: list[Any] = []
        guarded = self._keyed(tuple(c for c in node.children if isinstance(c, And)),
                              negated=False)
        placed_groups = {id(c): item for item in guarded if isinstance(item, tuple)
                         for _, c in item[1]}
        done: set[int] = set()
        for c in node.children:
            item = placed_groups.get(id(c))
            if item is not None:
                if id(item) not in done:
                    done.add(id(item))
                    order.append(("group", item))
                continue
            if (isinstance(c, Compare) and isinstance(c.lhs, FieldRef)
                    and c.op in ("=", "==", "in", "startswith", "endswith")
                    and isinstance(c.rhs, Str | ListValue)):
                lhs = self.operand(c.lhs)
                if lhs.kind == "str" and not lhs.multi and not (
                        c.op in ("startswith", "endswith") and not isinstance(c.rhs, Str)):
                    op = "in" if c.op in ("=", "==", "in") else c.op
                    gk = (c.lhs.name, c.lhs.arg, op)
                    if gk not in groups:
                        groups[gk] = []
                        order.append(gk)
                    groups[gk].append(c)
                    continue
            order.append(c)
        parts = []
        known = set(self._known)
        try:
            for item in order:
                parts.append(self._or_part(item, groups))
        finally:
            self._known = known
        return parts

    def _or_part(self, item: Any, groups: dict[tuple[str, str | None, str], list[Compare]]
                 ) -> str:
        """One part of an ``or`` (see ``_or_parts``); the field it reads first is learnt."""
        if not isinstance(item, tuple):
            out = self.expr(item)
            ref = _lhs_ref(item)
            if ref is not None:
                self._learn((ref.name, ref.arg))
            return out
        if item[0] == "group":
            out = self._group_expr(item[1][0], item[1][1], negated=False)
            self._learn(item[1][0])
            return out
        members = groups[item]
        first = members[0].lhs
        assert isinstance(first, FieldRef)
        out = self.expr(members[0]) if len(members) == 1 else self._merged(item, members)
        self._learn((first.name, first.arg))
        return out

    def _merged(self, item: tuple[str, str | None, str], members: list[Compare]) -> str:
        """Tests of one string field against several constants with one operator."""
        lhs = self.operand(members[0].lhs)
        values: list[str] = []
        for m in members:
            rhs = m.rhs
            values.extend([rhs.value] if isinstance(rhs, Str) else
                          [i.value for i in rhs.items])  # type: ignore[union-attr]
        if item[2] == "in":
            return f"({lhs.expr} in {self.bind(frozenset(values))})"
        return (f"((_v := {lhs.expr}) is not None and "
                f"_v.{item[2]}({self.bind(tuple(values))}))")

    def operand(self, node: FieldRef | Transform | Call) -> Operand:
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, FieldRef):
            bound = self.resolve(node)
            kind = field_kind(bound)
            # keyed by the extractor itself: fields with one extractor (fd.ip and fd.net)
            # share its name, so a matcher computes their value once per event
            fname = self.bind(bound.extract, ("extractor", bound.extract))
            render = bound.render if kind != "str" else None
            multi = bool(getattr(bound, "multi", False))
            inline = self._inline_src(bound)
            ref = (node.name, node.arg)
            if inline is not None:
                expr = self._field_expr(f"inline:{node.name}:{node.arg}", inline, ref)
            else:
                expr = self._field_expr(fname, f"{fname}(e)", ref)
            return Operand(expr, kind, multi, render, node.text)
        inner = self.operand(node.arg)
        func = node.func
        out_kind = transform_kind(func, inner, node)
        fn = TRANSFORM_FUNCS[func]
        if func == "len" and inner.kind == "list" and not inner.multi:
            t = none_safe(fn)
        elif inner.kind == "list" or inner.multi:
            t = each(fn)
        else:
            t = none_safe(fn)
        tname = self.bind(t, ("transform", func, inner.kind == "list" or inner.multi,
                              inner.kind == "list" and not inner.multi))
        multi = inner.multi
        return Operand(f"{tname}({inner.expr})", out_kind, multi, None, node.text)

    def _call(self, node: Call) -> Operand:
        """concat(), join(), getopt(): one bound function over the arguments' values; the
        result is missing when a field argument is (comparisons on it are then false)."""
        operands = [None if isinstance(a, Str) else self.operand(a) for a in node.args]
        for i, o in enumerate(operands):
            if o is None or (node.func == "join" and i == 0):  # join() takes a list first
                continue
            if o.multi or (o.kind == "list" and node.func == "concat"):
                raise CompileError(f"{node.func}() cannot take the list or 'any of' field "
                                   f"'{o.text}'", node)
        exprs = [o.expr if o is not None else self.bind(a.value)  # type: ignore[union-attr]
                 for a, o in zip(node.args, operands, strict=True)]
        fn: Callable[..., Any]
        if node.func == "concat":
            renders = [o.render if o is not None else None for o in operands]
            fields = [o is not None for o in operands]

            def concat(*values: Any) -> str | None:
                if any(v is None for v, f in zip(values, fields, strict=True) if f):
                    return None
                return "".join(text_of(v, r) for v, r in zip(values, renders, strict=True))

            fn, kind = concat, "str"
        else:
            first = operands[0]
            assert first is not None  # the parser makes the first argument a field
            # join() needs a list; getopt() also reads a command line kept as one string
            # (proc.args, as Falco has it), split at blanks
            if not (first.kind == "list" or (node.func == "join" and first.multi)
                    or (node.func == "getopt" and first.kind == "str")):
                want = "a list field" if node.func == "join" else "a list or string field"
                raise CompileError(f"{node.func}() needs {want}, but '{first.text}' is "
                                   f"{article(first.kind)}", node)
            if node.func == "join":
                def join(values: Any, sep: str) -> str | None:
                    return None if values is None else sep.join(text_of(v, None)
                                                                 for v in values)
                fn, kind = join, "str"
            elif node.key is None:
                def options(values: Any, optstring: str) -> tuple[str, ...] | None:
                    found = getopt(values, optstring)
                    return None if found is None else tuple(found)
                fn, kind = options, "list"
            else:
                key = node.key

                def option(values: Any, optstring: str) -> str | None:
                    found = getopt(values, optstring)
                    return None if found is None else found.get(key)
                fn, kind = option, "str"
        name = self.bind(fn)
        return Operand(f"{name}({', '.join(exprs)})", kind, False, None, node.text)

    def compare(self, node: Compare) -> str:
        no_evt_type(node)
        lhs = self.operand(node.lhs)
        op = "=" if node.op == "==" else node.op
        if op == "exists":
            if lhs.kind == "list" or lhs.multi:
                return f"(len({lhs.expr} or ()) > 0)"
            return f"({lhs.expr} is not None)"
        rhs = node.rhs
        if isinstance(rhs, FieldRef | Transform):
            return self._compare_val(node, lhs, op, self.operand(rhs))
        if isinstance(rhs, ListRef):
            raise CompileError(f"'{rhs.name}' is not a defined list", rhs)
        if lhs.multi and lhs.kind in ("ip", "net") and op in ("=", "!=", "in", "intersects"):
            if op in ("=", "!=") and not isinstance(rhs, Str):
                raise CompileError(f"operator '{op}' needs a single value", node)
            consts = [self._const(node, lhs, i) for i in items(node, rhs)]
            fn = self.bind(ip_any(consts))
            if op == "!=":  # Falco: true when neither end equals (and there is an end)
                return f"((_m := {lhs.expr}) and not {fn}(_m))"
            return f"{fn}({lhs.expr})"
        if lhs.multi and op in ("=", "in") and lhs.kind in ("str", "num"):
            # "some candidate equals / is one of": one C-level membership test instead of
            # a predicate call per candidate (candidates are strings or numbers)
            if op == "=" and isinstance(rhs, Str):
                c = self._const(node, lhs, rhs)
                return f"({self.bind(c, ('c', lhs.kind, c, type(c)))} in ({lhs.expr} or ()))"
            if op == "in" and isinstance(rhs, ListValue):
                values = frozenset(self._const(node, lhs, i) for i in rhs.items)
                name = self.bind(values, ("set", lhs.kind, values))
                return f"(not {name}.isdisjoint({lhs.expr} or ()))"
        if lhs.multi:
            negate = op == "!="
            test = self._test(node, lhs.kind, "=" if negate else op, rhs, lhs)
            pred = self.bind(eval(compile(f"lambda _v: {test}", self.filename, "eval"), self.ns))
            anyname = self.bind(any_of, "any_of")
            if negate:  # as for addresses: "fd.port != 22" means neither end is port 22
                return f"((_m := {lhs.expr}) and not {anyname}({pred}, _m))"
            return f"{anyname}({pred}, {lhs.expr})"
        if lhs.kind == "list":
            return self._compare_list(node, lhs, op, rhs)
        # equality shortcuts that need no None test: None never equals a constant
        if op in ("=", "in", "intersects") and lhs.kind in ("str", "num", "bool"):
            if op == "=" and isinstance(rhs, Str):
                c = self._const(node, lhs, rhs)
                return f"({lhs.expr} == {self.bind(c, ('c', lhs.kind, c, type(c)))})"
            if isinstance(rhs, ListValue):
                values = frozenset(self._const(node, lhs, i) for i in rhs.items)
                return f"({lhs.expr} in {self.bind(values, ('set', lhs.kind, values))})"
        test = self._test(node, lhs.kind, op, rhs, lhs)
        return f"((_v := {lhs.expr}) is not None and {test})"

    # -- helpers -----------------------------------------------------------------------------
    def _const(self, node: Node, lhs: Operand, s: Str) -> Any:
        return parse_constant(lhs.kind, s.value, s, lhs.text)

    def _test(self, node: Compare, kind: str, op: str, rhs: Any, lhs: Operand) -> str:
        """Expression testing the (non-missing) value ``_v`` against constant(s)."""
        spec = const_operator(node, op, kind, lhs)
        family = spec.family
        if family == "string":
            v = "_v"
            if kind != "str":  # a number or flags field compared as the text it renders to
                v = f"{self.bind(lhs.render, ('render', lhs.text))}(_v)"
            text = single(node, op, rhs, "a single value, not a list")
            c = spec.prepare(text.value, text)
            return spec.const_test.format(v=v, c=self.bind(c))
        if family == "number":
            value = single(node, op, rhs, "a single value").value
            bound = value if kind == "str" else parse_number(value, rhs, lhs.text)
            return spec.const_test.format(v="_v", c=self.bind(bound))
        if family == "equality":
            c = self._const(node, lhs, single(node, op, rhs, "a single value"))
            if kind in ("ip", "net"):
                m = self.bind(ip_matcher([c]))
                return f"{'not ' if op == '!=' else ''}{m}(_v)"
            return spec.const_test.format(v="_v", c=self.bind(c))
        if family == "set":
            consts = [self._const(node, lhs, i) for i in items(node, rhs)]
            if kind in ("ip", "net"):
                return f"{self.bind(ip_matcher(consts))}(_v)"
            return spec.const_test.format(v="_v", c=self.bind(frozenset(consts)))
        pm = path_prefix_matcher([i.value for i in items(node, rhs)])
        return spec.const_test.format(v="_v", c=self.bind(pm))

    def _compare_list(self, node: Compare, lhs: Operand, op: str, rhs: Any) -> str:
        """A list-valued field: ``in`` = every element is in the set (and there is one),
        ``intersects`` = some element is; other operators hold when some element matches."""
        if op in ("in", "intersects"):
            members = frozenset(i.value for i in items(node, rhs))
            s = self.bind(members)
            if op == "in":
                return f"((_v := {lhs.expr}) and {s}.issuperset(_v))"
            return f"((_v := {lhs.expr}) and not {s}.isdisjoint(_v))"
        test = self._test(node, "str", op, rhs, lhs)
        pred = self.bind(eval(compile(f"lambda _v: {test}", self.filename, "eval"), self.ns))
        return f"{self.bind(any_of, 'any_of')}({pred}, {lhs.expr})"

    def _compare_val(self, node: Compare, lhs: Operand, op: str, rhs: Operand) -> str:
        test = val_test(node, op, lhs, rhs)
        pre = f"(_v := {lhs.expr}) is not None and (_w := {rhs.expr}) is not None"
        return f"({pre} and {test.format(v='_v', w='_w')})"


#: how far into a rule's conjuncts a test shared with other rules is looked for
_LOOKAHEAD = 3

#: how deep rules sharing their leading tests are nested (Python limits indentation)
_MAX_DEPTH = 12


def _lhs_ref(node: Node) -> FieldRef | None:
    """The field a comparison (or its negation) reads first, unconditionally."""
    if isinstance(node, Not):
        node = node.child
    if isinstance(node, Compare) and isinstance(node.lhs, FieldRef):
        return node.lhs
    return None


def _factor_ors(kids: tuple[Node, ...]) -> tuple[Node, ...]:
    """A rule's conjuncts with each ``or`` whose every branch has the same conjuncts ``X``
    split into ``X`` and the ``or`` of what is left: ``(open_read and fd.typechar = f and
    fd.num >= 0) or (open_read and fd.typechar = d and fd.num >= 0)`` becomes ``open_read``,
    ``fd.num >= 0``, ``fd.typechar in (f, d)``.  The same truth value (the tests are pure);
    the shared parts are then tested once, and can be shared with other rules (``_emit``)."""
    out: list[Node] = []
    for kid in kids:
        if not isinstance(kid, Or):
            out.append(kid)
            continue
        branches = [b.children if isinstance(b, And) else (b,) for b in kid.children]
        texts = [[_text(c) for c in b] for b in branches]
        common = [t for t in dict.fromkeys(texts[0]) if all(t in ts for ts in texts[1:])]
        if not common:
            out.append(kid)
            continue
        shared = set(common)
        taken: set[str] = set()
        for c, t in zip(branches[0], texts[0], strict=True):
            if t in shared and t not in taken:
                taken.add(t)
                out.append(c)
        rests: list[Node] = []
        for b, ts in zip(branches, texts, strict=True):
            rest = tuple(c for c, t in zip(b, ts, strict=True) if t not in shared)
            if not rest:  # this branch holds once the shared parts do: the or is true
                rests = []
                break
            rests.append(rest[0] if len(rest) == 1 else
                         And(rest, pos=rest[0].pos, origin=rest[0].origin))
        if rests:
            out.append(Or(tuple(rests), pos=kid.pos, origin=kid.origin))
    return tuple(out)


def _without(kids: tuple[Node, ...], text: str) -> tuple[Node, ...]:
    """The conjuncts without the first one whose text is ``text``."""
    for n, c in enumerate(kids):
        if _text(c) == text:
            return kids[:n] + kids[n + 1:]
    return kids


_TESTED = re.compile(r"\((_[ab]\d+) if \1 is not _U else |if (_[ab]\d+) is _U:")


def _with_initial_values(body: list[str]) -> list[str]:
    """``body`` with the ``_U`` initial value of each lazy local set at the start of the
    innermost block that holds every test of it (setting ~50 locals costs ~100 ns, so an
    event that never enters a block does not pay for the locals only that block reads).

    A local read without a test is known to be computed there (see ``_emit``); it is set
    before, on every path to the read, and no initial value can come in between: a block
    holding a test of the local lies outside the places where it is known."""
    lines = "\n".join(body).split("\n")
    paths: list[tuple[int, ...]] = []
    stack: list[tuple[int, int]] = []  # (indentation, line index) of the open blocks
    where: dict[str, tuple[int, ...]] = {}
    for n, line in enumerate(lines):
        depth = len(line) - len(line.lstrip(" "))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        path = tuple(i for _, i in stack)
        paths.append(path)
        for m in _TESTED.finditer(line):
            local = m.group(1) or m.group(2)
            old = where.get(local)
            if old is None:
                where[local] = path
            else:
                k = 0
                while k < len(old) and k < len(path) and old[k] == path[k]:
                    k += 1
                where[local] = old[:k]
        if line.rstrip().endswith(":"):
            stack.append((depth, n))
    at: dict[int, list[str]] = {}
    for local, path in where.items():
        at.setdefault(path[-1] if path else -1, []).append(local)
    out: list[str] = []
    if -1 in at:
        out.append("    " + " = ".join(sorted(at[-1], key=_local_order)) + " = _U")
    for n, line in enumerate(lines):
        out.append(line)
        if n in at:
            inner = lines[n + 1]
            indent = inner[:len(inner) - len(inner.lstrip(" "))]
            out.append(indent + " = ".join(sorted(at[n], key=_local_order)) + " = _U")
    return out


def _local_order(name: str) -> tuple[str, int]:
    return name[:2], int(name[2:])


def _text(node: Node) -> str:
    from sysward.rules.ast import to_text

    return to_text(node)


def _shared_subtrees(trees: list[Node]) -> dict[int, str]:
    """and/or/not subtrees that occur (structurally) in two or more of ``trees``."""
    from sysward.rules.ast import to_text

    text_of: dict[int, str] = {}
    owners: dict[str, set[int]] = {}

    def visit(n: Node, owner: int) -> None:
        if isinstance(n, And | Or | Not):
            key = text_of.get(id(n))
            if key is None:
                key = text_of[id(n)] = to_text(n)
            owners.setdefault(key, set()).add(owner)
            for c in (n.children if isinstance(n, And | Or) else (n.child,)):
                visit(c, owner)

    for i, t in enumerate(trees):
        visit(t, i)
    shared = {k for k, o in owners.items() if len(o) > 1}
    return {i: k for i, k in text_of.items() if k in shared}


class _Unset:
    """Marks a lazily extracted field that has not been extracted yet (None is a value).

    It is only ever tested by identity.  Any other use (a comparison, a truth test, a set
    lookup) would mean a generated matcher read a local it had not computed: that raises,
    so the rule-by-rule fallback takes over (and counts it) instead of a silent mismatch.
    """

    __slots__ = ()

    def _misuse(self, *_args: Any) -> Any:
        raise RuntimeError("a generated matcher read a field it had not extracted")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _misuse
    __bool__ = __len__ = _misuse
    __hash__ = _misuse


_UNSET = _Unset()


def _always_true(e: Any) -> bool:
    return True


def _always_false(e: Any) -> bool:
    return False


__all__ = ["CodeGen", "Predicate"]
