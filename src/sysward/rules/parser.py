"""Condition parser: recursive descent over this grammar (Falco's condition language).

    expr        := or_expr
    or_expr     := and_expr ( "or" and_expr )*
    and_expr    := not_expr ( "and" not_expr )*
    not_expr    := "not" not_expr | check
    check       := "(" expr ")"
                 | operand condition
                 | IDENT                                  -- a macro reference
    operand     := TRANSFORMER "(" operand ")" | call | field
    call        := "concat(" item ( "," item )* ")"
                 | "join(" operand "," value ")"
                 | "getopt(" operand "," value ")" ( "[" ( QUOTED | ARGSTR ) "]" )?
    item        := operand | value
    field       := FIELDNAME ( "[" ( QUOTED | ARGSTR ) "]" )?
    condition   := "exists"
                 | NUM_OP   ( value | rhs_operand )
                 | STR_OP   ( value | rhs_operand )
                 | LIST_OP  ( list | IDENT | rhs_operand )  -- IDENT names a list
    rhs_operand := "val(" field ")" | TRANSFORMER "(" operand ")"
    list        := "(" ( value ( "," value )* )? ")"
    value       := QUOTED | BARESTR

    NUM_OP      := "<=" | "<" | ">=" | ">"
    STR_OP      := "==" | "=" | "!=" | "contains" | "icontains" | "bcontains" | "startswith"
                 | "bstartswith" | "endswith" | "glob" | "iglob" | "regex"
    LIST_OP     := "in" | "intersects" | "pmatch"
    TRANSFORMER := "tolower" | "toupper" | "b64" | "basename" | "len"

    IDENT       := [a-zA-Z][a-zA-Z0-9_]*
    FIELDNAME   := IDENT ( "." [a-zA-Z][a-zA-Z0-9_]* )+      -- a dot tells a field from a macro
    ARGSTR      := [^ \\t\\n\\r\\[\\]"']+
    QUOTED      := '"' ... '"' | "'" ... "'"   -- see "Strings" below
    BARESTR     := [^ \\t\\n\\r(),="']+

Strings follow Falco's lexer to the letter, so that a condition means the same in both:
a string ends at the first delimiter that does not follow a backslash *in the raw text*
(so ``"a\\\\" b"`` is one string, ``a\\" b``: the quote after an escaped backslash
continues it), then its escapes are decoded: ``\\b \\f \\n \\r \\t``, ``\\\\`` and
``\\/``, ``\\"`` only inside double quotes and ``\\'`` only inside single quotes,
``\\xHH`` (one byte; ``\\x00`` is refused: values never hold NUL), and Falco's legacy
``\\ `` (a backslash).  Any other escape is refused, as Falco refuses it (a regex writes
``\\\\d``).  Bytes from ``\\xHH`` that are not UTF-8 stay raw bytes (the decoder keeps an
event's invalid bytes the same way, as surrogate escapes), so ``contains "\\xff"`` can match.

Keywords (and, or, not, word operators) end at a blank or "(", except ``exists``, which
Falco reads as a prefix (``x existsand y``); a transformer's "(" follows its name at once.
Nesting is capped at MAX_DEPTH so hostile input cannot exhaust the stack; every failure is a
``ParseError`` with the offset where it happened.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sysward.rules.ast import (
    CALLS,
    TRANSFORMERS,
    And,
    Call,
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

MAX_DEPTH = 100

_BLANK = " \t\n\r\b\f\v"
_IDENT = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*")
_FIELDNAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z][a-zA-Z0-9_]*)+")
_ARGSTR = re.compile(r"[^ \t\n\r\b\[\]\"']+")
_BARESTR = re.compile(r"[^ \t\n\r\b(),=\"']+")
_WORD_CHAR = re.compile(r"[a-zA-Z0-9_.]")

_SYMBOL_OPS = ("<=", "<", ">=", ">", "==", "=", "!=")
# longest first, so that "icontains" is not read as "in" + "contains"
_WORD_OPS = (
    "bstartswith", "startswith", "intersects", "icontains", "bcontains", "contains",
    "endswith", "exists", "pmatch", "regex", "iglob", "glob", "in",
)
# the escapes Falco decodes; "\\ " is its legacy spelling of a backslash
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", "/": "/",
            " ": "\\", '"': '"', "'": "'"}
_HEX = frozenset("0123456789abcdefABCDEF")


class ParseError(ValueError):
    """A condition that does not follow the grammar; ``offset`` is where parsing stopped."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def parse(text: str, origin: Origin | None = None) -> Node:
    """Parse a whole condition; raises ParseError (only) when it is not valid."""
    if not isinstance(text, str):
        raise ParseError("a condition must be a string", 0)
    return _Parser(text, origin or Origin(text, "")).parse()


def parse_field(text: str, origin: Origin | None = None) -> FieldRef:
    """Parse a lone field name such as ``proc.aname[2]`` (used for exceptions' ``fields``)."""
    p = _Parser(text, origin or Origin(text, ""))
    p.skip_blanks()
    f = p.field()
    p.skip_blanks()
    if p.i != len(text):
        raise ParseError(f"unexpected text after field '{f.text}'", p.i)
    return f


class _Parser:
    __slots__ = ("s", "i", "n", "origin", "depth")

    def __init__(self, text: str, origin: Origin) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)
        self.origin = origin
        self.depth = 0

    # -- helpers ---------------------------------------------------------------------------
    def error(self, message: str, at: int | None = None) -> ParseError:
        return ParseError(message, self.i if at is None else at)

    def skip_blanks(self) -> None:
        s, i, n = self.s, self.i, self.n
        while i < n and s[i] in _BLANK:
            i += 1
        self.i = i

    def keyword(self, word: str) -> bool:
        """Consume ``word`` if it is next and ends at a blank, "(" or the end."""
        self.skip_blanks()
        end = self.i + len(word)
        if self.s.startswith(word, self.i) and (end == self.n or self.s[end] in _BLANK + "("):
            self.i = end
            return True
        return False

    def found(self) -> str:
        self.skip_blanks()
        if self.i >= self.n:
            return "end of condition"
        return f"'{self.s[self.i:self.i + 20].split(chr(10))[0]}'"

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"condition nested deeper than {MAX_DEPTH} levels")

    # -- grammar ---------------------------------------------------------------------------
    def parse(self) -> Node:
        self.skip_blanks()
        if self.i >= self.n:
            raise self.error("empty condition")
        node = self.or_expr()
        self.skip_blanks()
        if self.i < self.n:
            raise self.error(f"unexpected {self.found()} (expected 'and', 'or' or the end)")
        return node

    def or_expr(self) -> Node:
        self.enter()
        start = self.i
        children = [self.and_expr()]
        while self.keyword("or"):
            children.append(self.and_expr())
        self.depth -= 1
        if len(children) == 1:
            return children[0]
        return Or(tuple(children), pos=start, origin=self.origin)

    def and_expr(self) -> Node:
        self.skip_blanks()
        start = self.i
        children = [self.not_expr()]
        while self.keyword("and"):
            children.append(self.not_expr())
        if len(children) == 1:
            return children[0]
        return And(tuple(children), pos=start, origin=self.origin)

    def not_expr(self) -> Node:
        self.skip_blanks()
        start = self.i
        if self.keyword("not"):
            self.enter()
            child = self.not_expr()
            self.depth -= 1
            return Not(child, pos=start, origin=self.origin)
        return self.check()

    def check(self) -> Node:
        self.skip_blanks()
        start = self.i
        if self.i >= self.n:
            raise self.error("expected a condition, found the end")
        if self.s[self.i] == "(":
            self.i += 1
            node = self.or_expr()
            self.skip_blanks()
            if self.i >= self.n or self.s[self.i] != ")":
                raise self.error(f"expected ')' to close the '(' at offset {start}, "
                                 f"found {self.found()}")
            self.i += 1
            return node
        m = _FIELDNAME.match(self.s, self.i)
        if m is not None or self._at_transformer():
            lhs = self.operand()
            return self.condition(lhs, start)
        m = _IDENT.match(self.s, self.i)
        if m is not None:
            name = m.group()
            if name in ("and", "or", "not"):
                raise self.error(f"expected a condition, found the keyword '{name}'")
            self.i = m.end()
            return MacroRef(name, pos=start, origin=self.origin)
        raise self.error(f"expected a field, a macro name or '(', found {self.found()}")

    def _at_transformer(self) -> bool:
        m = _IDENT.match(self.s, self.i)
        if m is None or (m.group() not in TRANSFORMERS and m.group() not in CALLS):
            return False
        # Falco lexes "tolower(" as one token: "tolower (x)" is a macro name and a group
        j = m.end()
        return j < self.n and self.s[j] == "("

    def operand(self) -> FieldRef | Transform | Call:
        self.skip_blanks()
        start = self.i
        if self._at_transformer():
            m = _IDENT.match(self.s, self.i)
            assert m is not None
            func = m.group()
            self.i = m.end() + 1
            if func in CALLS:
                return self.call(func, start)
            self.enter()
            inner = self.operand()
            self.depth -= 1
            self.skip_blanks()
            if self.i >= self.n or self.s[self.i] != ")":
                raise self.error(f"expected ')' to close '{func}(', found {self.found()}")
            self.i += 1
            return Transform(func, inner, pos=start, origin=self.origin)
        return self.field()

    def field(self) -> FieldRef:
        start = self.i
        m = _FIELDNAME.match(self.s, self.i)
        if m is None:
            raise self.error(f"expected a field name (like proc.name), found {self.found()}")
        self.i = m.end()
        arg: str | None = None
        if self.i < self.n and self.s[self.i] == "[":
            self.i += 1
            if self.i < self.n and self.s[self.i] in "\"'":
                arg = self.quoted()
            else:
                am = _ARGSTR.match(self.s, self.i)
                if am is None:
                    raise self.error(f"expected an argument inside '[...]' of '{m.group()}'")
                arg = am.group()
                self.i = am.end()
            if self.i >= self.n or self.s[self.i] != "]":
                raise self.error(f"expected ']' after the argument of '{m.group()}'")
            self.i += 1
        return FieldRef(m.group(), arg, pos=start, origin=self.origin)

    def call(self, func: str, start: int) -> Call:
        """The arguments of a transformer of several, after its "(" (see the grammar)."""
        self.enter()
        args: list[FieldRef | Transform | Call | Str] = []
        while True:
            self.skip_blanks()
            if self.i >= self.n:
                raise self.error(f"expected ')' to close '{func}(', found the end")
            if _FIELDNAME.match(self.s, self.i) or self._at_transformer():
                args.append(self.operand())
            else:
                args.append(self.value(f"{func}("))
            self.skip_blanks()
            if self.i < self.n and self.s[self.i] == ",":
                self.i += 1
                continue
            if self.i < self.n and self.s[self.i] == ")":
                self.i += 1
                break
            raise self.error(f"expected ',' or ')' in '{func}(', found {self.found()}")
        self.depth -= 1
        fields = [a for a in args if not isinstance(a, Str)]
        if func == "concat":
            if len(args) < 2 or not fields:
                raise self.error("concat() needs two or more items, at least one a field", start)
        elif len(args) != 2 or isinstance(args[0], Str) or not isinstance(args[1], Str):
            what = "a list field and a separator" if func == "join" else (
                "an argument list field and an option string (like \"nt:\")")
            raise self.error(f"{func}() takes {what}", start)
        key: str | None = None
        if func == "getopt" and self.i < self.n and self.s[self.i] == "[":
            self.i += 1
            if self.i < self.n and self.s[self.i] in "\"'":
                key = self.quoted()
            else:
                am = _ARGSTR.match(self.s, self.i)
                if am is None:
                    raise self.error("expected an option letter inside '[...]' of getopt()")
                key = am.group()
                self.i = am.end()
            if self.i >= self.n or self.s[self.i] != "]":
                raise self.error("expected ']' after the option of getopt()")
            self.i += 1
        return Call(func, tuple(args), key, pos=start, origin=self.origin)

    def operator(self) -> str:
        self.skip_blanks()
        s, i = self.s, self.i
        for op in _SYMBOL_OPS:
            if s.startswith(op, i):
                self.i = i + len(op)
                return op
        for op in _WORD_OPS:
            if s.startswith(op, i):
                end = i + len(op)
                # Falco matches the unary operator as a bare prefix ("x existsand y")
                if op != "exists" and end < self.n and _WORD_CHAR.match(s, end):
                    continue
                self.i = end
                return op
        raise self.error(f"expected an operator (=, !=, <, contains, in, exists ...), "
                         f"found {self.found()}")

    def condition(self, lhs: FieldRef | Transform | Call, start: int) -> Node:
        op = self.operator()
        if op == "exists":
            return Compare(lhs, op, None, pos=start, origin=self.origin)
        self.skip_blanks()
        rhs_start = self.i
        if self.i >= self.n:
            raise self.error(f"expected a value after '{op}', found the end")
        rhs_operand = self.rhs_operand()
        if rhs_operand is not None:
            return Compare(lhs, op, rhs_operand, pos=start, origin=self.origin)
        if op in ("in", "intersects", "pmatch"):
            if self.s[self.i] == "(":
                return Compare(lhs, op, self.list_value(), pos=start, origin=self.origin)
            m = _IDENT.match(self.s, self.i)
            if m is None:
                raise self.error(f"expected a list '(a, b)' or a list name after '{op}', "
                                 f"found {self.found()}")
            self.i = m.end()
            return Compare(lhs, op, ListRef(m.group(), pos=rhs_start, origin=self.origin),
                           pos=start, origin=self.origin)
        return Compare(lhs, op, self.value(op), pos=start, origin=self.origin)

    def rhs_operand(self) -> FieldRef | Transform | Call | None:
        if self.s.startswith("val(", self.i):
            self.i += 4
            self.skip_blanks()
            f = self.field()
            self.skip_blanks()
            if self.i >= self.n or self.s[self.i] != ")":
                raise self.error(f"expected ')' to close 'val(', found {self.found()}")
            self.i += 1
            return f
        if self._at_transformer():
            return self.operand()
        return None

    def value(self, after: str) -> Str:
        start = self.i
        if self.s[self.i] in "\"'":
            return Str(self.quoted(), True, pos=start, origin=self.origin)
        m = _BARESTR.match(self.s, self.i)
        if m is None:
            raise self.error(f"expected a value after '{after}', found {self.found()}")
        self.i = m.end()
        return Str(m.group(), False, pos=start, origin=self.origin)

    def list_value(self) -> ListValue:
        start = self.i
        self.i += 1  # "("
        items: list[Str] = []
        self.skip_blanks()
        if self.i < self.n and self.s[self.i] == ")":
            self.i += 1
            return ListValue((), pos=start, origin=self.origin)
        while True:
            self.skip_blanks()
            if self.i >= self.n:
                raise self.error(f"list opened at offset {start} is not closed")
            items.append(self.value("("))
            self.skip_blanks()
            if self.i < self.n and self.s[self.i] == ",":
                self.i += 1
                continue
            if self.i < self.n and self.s[self.i] == ")":
                self.i += 1
                return ListValue(tuple(items), pos=start, origin=self.origin)
            raise self.error(f"expected ',' or ')' in list, found {self.found()}")

    def quoted(self) -> str:
        quote = self.s[self.i]
        start = self.i
        s, n = self.s, self.n
        # the raw scan: the first delimiter not preceded by a backslash closes the string
        j = start + 1
        while j < n and not (s[j] == quote and s[j - 1] != "\\"):
            j += 1
        if j >= n:
            raise self.error("string is not closed", start)
        value = unescape(s[start + 1:j], quote, start + 1, self.error)
        self.i = j + 1
        return value


def unescape(raw: str, delim: str, offset: int,
             error: Callable[[str, int], ParseError]) -> str:
    """Decode the escapes of a quoted string's raw text (Falco's rules, see the module doc)."""
    if "\\" not in raw:
        if "\0" in raw:
            raise error("a string value cannot contain a NUL character", offset + raw.index("\0"))
        return raw
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch != "\\":
            if ch == "\0":
                raise error("a string value cannot contain a NUL character", offset + i)
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = raw[i + 1]  # the raw scan guarantees a character after a backslash
        if nxt in _ESCAPES:
            if nxt in "\"'" and nxt != delim:
                other = "single" if delim == "'" else "double"
                raise error(f"\\{nxt} is not an escape inside {other} quotes "
                            f"(write {nxt} alone)", offset + i)
            out += _ESCAPES[nxt].encode()
            i += 2
        elif nxt == "x":
            hexdigits = raw[i + 2:i + 4]
            if len(hexdigits) != 2 or not all(c in _HEX for c in hexdigits):
                raise error("\\x must be followed by two hex digits (like \\x41)", offset + i)
            byte = int(hexdigits, 16)
            if byte == 0:
                raise error("a string value cannot contain a NUL character (\\x00)", offset + i)
            out.append(byte)
            i += 4
        else:
            raise error(f"unsupported escape sequence \\{nxt} in a string (Falco refuses it "
                        f"too; write \\\\{nxt} for a backslash followed by '{nxt}')", offset + i)
    return out.decode("utf-8", "surrogateescape")

