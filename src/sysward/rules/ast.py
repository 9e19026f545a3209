"""The condition AST: a handful of immutable node types.

Every node remembers where it came from (``origin`` + ``pos``, an offset into that origin's
text) so that an error found late -- an unknown field discovered while compiling a macro
inlined three levels deep -- still points at the right file, line and column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sysward.rules.diagnostics import Position, snippet_at


class Origin:
    """The text a node was parsed from: a condition, a macro, an exception, an output."""

    __slots__ = ("text", "label", "_locate")

    def __init__(self, text: str, label: str, locate: Callable[[int], Position] | None = None):
        self.text = text
        self.label = label  # "rule 'X'", "macro 'y'": used in messages
        self._locate = locate

    def position(self, offset: int) -> Position:
        if self._locate is None:
            return Position("<string>", 1, offset + 1)
        return self._locate(offset)

    def snippet(self, offset: int) -> str:
        return snippet_at(self.text, offset)


_NO_ORIGIN = Origin("", "")


@dataclass(frozen=True, slots=True)
class Node:
    pos: int = field(default=0, compare=False, kw_only=True)
    origin: Origin = field(default=_NO_ORIGIN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class And(Node):
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or(Node):
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not(Node):
    child: Node


@dataclass(frozen=True, slots=True)
class Const(Node):
    """A condition known at compile time (after specialising on the event type)."""

    value: bool


@dataclass(frozen=True, slots=True)
class MacroRef(Node):
    name: str


@dataclass(frozen=True, slots=True)
class FieldRef(Node):
    name: str  # "proc.aname", "evt.arg.flags"
    arg: str | None = None  # "2" in proc.aname[2]

    @property
    def text(self) -> str:
        return self.name if self.arg is None else f"{self.name}[{self.arg}]"


@dataclass(frozen=True, slots=True)
class Transform(Node):
    """tolower(x), toupper(x), b64(x), basename(x), len(x); ``val(x)`` only on the right."""

    func: str
    arg: FieldRef | Transform | Call

    @property
    def text(self) -> str:
        return f"{self.func}({self.arg.text})"


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A transformer of several arguments: ``concat(item, ...)`` (fields and literal strings
    joined), ``join(list_field, sep)``, ``getopt(args_field, optstring)`` and its
    ``getopt(...)[X]`` (the argument of option X)."""

    func: str
    args: tuple[FieldRef | Transform | Call | Str, ...]
    key: str | None = None

    @property
    def text(self) -> str:
        inner = ", ".join(a.text if not isinstance(a, Str) else quote(a.value) for a in self.args)
        return f"{self.func}({inner})" + (f"[{self.key}]" if self.key is not None else "")


@dataclass(frozen=True, slots=True)
class Str(Node):
    value: str
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class ListValue(Node):
    items: tuple[Str, ...]


@dataclass(frozen=True, slots=True)
class ListRef(Node):
    """``x in some_list``: a list named without parentheses."""

    name: str


Operand = FieldRef | Transform | Call
Value = Str | ListValue | ListRef | FieldRef | Transform | Call


@dataclass(frozen=True, slots=True)
class Compare(Node):
    lhs: Operand
    op: str  # "=", "!=", "<", ..., "contains", "in", "pmatch", "exists", ...
    rhs: Value | None = None  # None for the unary "exists"


NUM_OPS = frozenset({"<", "<=", ">", ">="})
LIST_OPS = frozenset({"in", "intersects", "pmatch"})
TRANSFORMERS = frozenset({"tolower", "toupper", "b64", "basename", "len"})
#: transformers of several arguments (Call nodes)
CALLS = frozenset({"concat", "join", "getopt"})


def walk(node: Node) -> Iterator[Node]:
    """Every node of a condition tree, parents before children."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, And | Or):
            stack.extend(reversed(n.children))
        elif isinstance(n, Not):
            stack.append(n.child)



_QUOTE_CONTROL = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def quote(value: str) -> str:
    """The quoted condition text of ``value``: what the parser reads back as ``value``."""
    out: list[str] = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch in _QUOTE_CONTROL:
            out.append(_QUOTE_CONTROL[ch])
        elif ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        elif "\udc80" <= ch <= "\udcff":  # a raw byte kept as a surrogate escape
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    # a backslash right before the closing quote would hide it from the raw scan; Falco's
    # legacy "\ " spells a backslash without that problem
    if out and out[-1] == "\\\\":
        out[-1] = "\\ "
    return '"' + "".join(out) + '"'


def to_text(node: Node) -> str:
    """Render a tree back to condition text (for messages and debugging)."""
    if isinstance(node, And):
        return "(" + " and ".join(to_text(c) for c in node.children) + ")"
    if isinstance(node, Or):
        return "(" + " or ".join(to_text(c) for c in node.children) + ")"
    if isinstance(node, Not):
        return f"not {to_text(node.child)}"
    if isinstance(node, Const):
        return "true" if node.value else "false"
    if isinstance(node, MacroRef | ListRef):
        return node.name
    if isinstance(node, FieldRef | Transform | Call):
        return node.text
    if isinstance(node, Str):
        return quote(node.value) if node.quoted or not node.value else node.value
    if isinstance(node, ListValue):
        return "(" + ", ".join(to_text(i) for i in node.items) + ")"
    if isinstance(node, Compare):
        if node.rhs is None:
            return f"{to_text(node.lhs)} {node.op}"
        rhs = node.rhs
        r = f"val({rhs.text})" if isinstance(rhs, FieldRef) else to_text(rhs)
        return f"{to_text(node.lhs)} {node.op} {r}"
    return f"<{type(node).__name__}>"
