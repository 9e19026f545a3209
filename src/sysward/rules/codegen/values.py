"""Value parsing: a field's kind, and the constants of a condition read as that kind.

A condition's constants are text (``proc.pid = 42``, ``fd.net = "10.0.0.0/8"``); they are
parsed once, at load time, into the Python values the field's extractor returns, so the
comparison per event is a plain ``==`` / ``in`` / matcher call.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable
from typing import Any

from sysward.rules.ast import Node
from sysward.rules.codegen.errors import CompileError

# FieldType names -> how the engine compares values of that type
_KINDS = {
    "STRING": "str", "INT": "num", "PORT": "num", "ABSTIME": "num", "RELTIME": "num",
    "BOOL": "bool", "IPADDR": "ip", "IPNET": "net", "LIST": "list",
}


def field_kind(bound: Any) -> str:
    name = getattr(bound.type, "name", str(bound.type)).upper()
    return _KINDS.get(name, "str")


def article(kind: str) -> str:
    return {"str": "a string", "num": "a number", "bool": "a boolean", "ip": "an IP address",
            "net": "an IP network", "list": "a list"}.get(kind, kind)


def parse_number(text: str, node: Node, field_text: str) -> int | float:
    t = text.strip()
    try:
        return int(t, 10)
    except ValueError:
        pass
    try:
        return int(t, 0)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        raise CompileError(f"'{text}' is not a number, but '{field_text}' is numeric",
                           node) from None


def parse_bool(text: str, node: Node, field_text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    raise CompileError(f"'{text}' is not true or false, but '{field_text}' is a boolean", node)


def parse_net(text: str, node: Node, field_text: str) -> Any:
    try:
        if "/" in text:
            return ipaddress.ip_network(text.strip(), strict=False)
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise CompileError(f"'{text}' is not an IP address or network, but '{field_text}' "
                           "is an address", node) from None


def parse_constant(kind: str, text: str, node: Node, field_text: str) -> Any:
    """The constant ``text`` as a value of ``kind`` (strings and lists stay text)."""
    if kind == "num":
        return parse_number(text, node, field_text)
    if kind == "bool":
        return parse_bool(text, node, field_text)
    if kind in ("ip", "net"):
        return parse_net(text, node, field_text)
    return text


# -- transforms (tolower(fd.name), len(proc.args) ...) --------------------------------------

def _b64(v: str) -> str | None:
    try:
        return base64.b64decode(v, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


TRANSFORM_FUNCS: dict[str, Callable[[Any], Any]] = {
    "tolower": str.lower,
    "toupper": str.upper,
    "basename": lambda v: v.rsplit("/", 1)[-1],
    "b64": _b64,
    "len": len,
}


def none_safe(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def t(v: Any) -> Any:
        return None if v is None else fn(v)
    return t


def each(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def t(v: Any) -> Any:
        if v is None:
            return None
        return tuple(r for r in (fn(x) for x in v if x is not None) if r is not None)
    return t


# -- transformers of several arguments (concat, join, getopt) --------------------------------

def text_of(value: Any, render: Callable[[Any], str] | None) -> str:
    """A field value as concat() and join() put it in a string (numbers and addresses as the
    field prints them)."""
    if isinstance(value, str):
        return value
    return render(value) if render is not None else str(value)


def getopt(args: Any, optstring: str) -> dict[str, str] | None:
    """The options of a command line (a list of words, or one string split at blanks) as
    C's getopt(3) finds them, GNU style (options may follow operands; "--" ends them):
    option letter -> its argument ("" for a flag).

    ``optstring`` lists the letters, each followed by ":" when it takes an argument, which is
    the rest of the same word (``-p8080``) or the next word (``-p 8080``).  Letters not in
    ``optstring`` are ignored, as getopt returns '?' for them.
    """
    if args is None:
        return None
    takes = {c: optstring[i + 1:i + 2] == ":" for i, c in enumerate(optstring) if c != ":"}
    found: dict[str, str] = {}
    words = args.split() if isinstance(args, str) else [str(a) for a in args]
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            break
        if not word.startswith("-") or word == "-" or word.startswith("--"):
            continue
        for j in range(1, len(word)):
            letter = word[j]
            if letter not in takes:
                continue
            if not takes[letter]:
                found[letter] = ""
                continue
            rest = word[j + 1:]
            if rest:
                found[letter] = rest
            elif i < len(words):
                found[letter] = words[i]
                i += 1
            break
    return found
