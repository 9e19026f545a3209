"""The operator table: what each condition operator means, written once.

Every comparison the code generator emits comes from one entry here: ``const_test`` when the
right-hand side is a constant (``proc.name startswith bash``), ``val_test`` when it is another
field (``fd.name startswith val(proc.cwd)``); list fields and "any of" fields apply the same
test to each candidate.  Templates are Python source over ``{v}`` (the field's value, never
None: the generator tests for a missing value first), ``{c}`` (the prepared constant, bound
in the generated function's namespace) and ``{w}`` (the other field's value).

Also here: the small runtime helpers the generated code calls (address and path-prefix
matchers, "any of"), since they are what some operators compile to.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sysward.rules.ast import Node
from sysward.rules.codegen.errors import CompileError

Family = Literal["string", "number", "equality", "set", "path"]


def _text(text: str, node: Node) -> str:
    return text


def _lower(text: str, node: Node) -> str:
    return text.lower()


def _hex_bytes(op: str) -> Callable[[str, Node], bytes]:
    def prepare(text: str, node: Node) -> bytes:
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise CompileError(f"'{op}' needs hexadecimal bytes (like 'CAFEBABE'), "
                               f"got '{text}'", node) from None
    return prepare


def glob_pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # fnmatch's translation: "*" also crosses "/" (no FNM_PATHNAME), as in Falco
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE if ignore_case else 0)


def _regex(text: str, node: Node) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise CompileError(f"invalid regular expression '{text}': {exc}", node) from None


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    family: Family  # which operands it takes (and so which type checks apply)
    const_test: str  # over {v} and {c}
    val_test: str | None = None  # over {v} and {w}; None: val() is refused
    #: string operators: the constant's text -> the constant the test uses
    prepare: Callable[[str, Node], Any] = _text


_ENCODED = "{v}.encode('utf-8', 'surrogateescape')"

OPERATORS: dict[str, Operator] = {op.name: op for op in (
    Operator("=", "equality", "{v} == {c}", "{v} == {w}"),
    Operator("!=", "equality", "{v} != {c}", "{v} != {w}"),
    Operator("<", "number", "{v} < {c}", "{v} < {w}"),
    Operator("<=", "number", "{v} <= {c}", "{v} <= {w}"),
    Operator(">", "number", "{v} > {c}", "{v} > {w}"),
    Operator(">=", "number", "{v} >= {c}", "{v} >= {w}"),
    Operator("in", "set", "{v} in {c}", "{v} == {w}"),
    Operator("intersects", "set", "{v} in {c}"),
    Operator("contains", "string", "{c} in {v}", "{w} in {v}"),
    Operator("icontains", "string", "{c} in {v}.lower()", "{w}.lower() in {v}.lower()",
             prepare=_lower),
    Operator("startswith", "string", "{v}.startswith({c})", "{v}.startswith({w})"),
    Operator("endswith", "string", "{v}.endswith({c})", "{v}.endswith({w})"),
    Operator("bcontains", "string", "{c} in " + _ENCODED, prepare=_hex_bytes("bcontains")),
    Operator("bstartswith", "string", _ENCODED + ".startswith({c})",
             prepare=_hex_bytes("bstartswith")),
    Operator("glob", "string", "{c}.match({v}) is not None",
             prepare=lambda text, node: glob_pattern(text, False)),
    Operator("iglob", "string", "{c}.match({v}) is not None",
             prepare=lambda text, node: glob_pattern(text, True)),
    Operator("regex", "string", "{c}.fullmatch({v}) is not None", prepare=_regex),
    # Falco refuses val() with pmatch: a path list is a constant
    Operator("pmatch", "path", "{c}({v})"),
)}

STRING_OPS = frozenset(n for n, op in OPERATORS.items() if op.family == "string")
NUMBER_OPS = frozenset(n for n, op in OPERATORS.items() if op.family == "number")


# -- what the generated code calls ---------------------------------------------------------

def path_prefix_matcher(prefixes: list[str]) -> Callable[[str], bool]:
    """pmatch: true when the path is one of ``prefixes`` or lies below one of them.

    ``/tmp/a`` matches ``/tmp/a`` and ``/tmp/a/b`` but not ``/tmp/ab``.  Each prefix of the
    path that ends at a "/" is looked up in a set, so the cost does not grow with the list.
    A prefix with wildcards (``/opt/*``, ``/opt/di?/x``, ``/opt/di[r]/x``, as Falco's pmatch
    takes them) matches component by component: each of its components is a shell pattern
    for the path's component at the same depth, and the path may go deeper.
    """
    exact = set()
    wild: list[tuple[str, ...]] = []
    for p in prefixes:
        p = p.rstrip("/") if p != "/" else p
        if not p:
            continue
        if any(ch in p for ch in "*?["):
            wild.append(tuple(p.split("/")))
        else:
            exact.add(p)
    everything = "/" in exact
    frozen = frozenset(exact)
    patterns = tuple(wild)
    match_part = fnmatch.fnmatchcase

    def below_pattern(path: str) -> bool:
        parts = path.split("/")
        for pat in patterns:
            if len(parts) >= len(pat) and all(
                    match_part(part, want) for part, want in zip(parts, pat, strict=False)):
                return True
        return False

    def pmatch(path: str) -> bool:
        if everything and path.startswith("/"):
            return True
        if path in frozen:
            return True
        i = path.find("/", 1)
        while i > 0:
            if path[:i] in frozen:
                return True
            i = path.find("/", i + 1)
        return bool(patterns) and below_pattern(path)

    return pmatch


_V4, _V6 = ipaddress.IPv4Address, ipaddress.IPv6Address


_IpSets = tuple[frozenset[int], frozenset[int], tuple[tuple[int, int], ...],
                tuple[tuple[int, int], ...]]


def _ip_sets(consts: list[Any]) -> _IpSets:
    """(v4 addresses, v6 addresses, v4 networks, v6 networks) as integers."""
    sets: dict[int, frozenset[int]] = {}
    nets: dict[int, tuple[tuple[int, int], ...]] = {}
    for ver in (4, 6):
        sets[ver] = frozenset(int(c) for c in consts if isinstance(c, _V4 | _V6)
                              and c.version == ver)
        nets[ver] = tuple((int(c.network_address), int(c.netmask)) for c in consts
                          if isinstance(c, ipaddress.IPv4Network | ipaddress.IPv6Network)
                          and c.version == ver)
    return sets[4], sets[6], nets[4], nets[6]


def ip_matcher(consts: list[Any]) -> Callable[[Any], bool]:
    """Address in a set of addresses / networks, on the integer form (ipaddress's own
    hashing, ``in``, ``version`` and ``int()`` are pure Python and slow on the hot path, so
    the integer is read straight from the address object of the exact stdlib classes)."""
    s4, s6, n4, n6 = _ip_sets(consts)

    def match(v: Any) -> bool:
        cls = v.__class__
        if cls is _V4:
            ip, s, ns = v._ip, s4, n4
        elif cls is _V6:
            ip, s, ns = v._ip, s6, n6
        else:
            try:
                ver, ip = v.version, int(v)
            except (AttributeError, TypeError, ValueError):
                return False
            s, ns = (s4, n4) if ver == 4 else (s6, n6) if ver == 6 else (frozenset(), ())
        if ip in s:
            return True
        for net, mask in ns:  # noqa: SIM110 - a plain loop is faster than any()
            if ip & mask == net:
                return True
        return False

    return match


def ip_any(consts: list[Any]) -> Callable[[Any], bool]:
    """An "any of" address field (fd.ip, fd.net) against addresses / networks: true when
    some candidate matches; one call per event instead of one per candidate.  (``!=`` is
    its negation: neither end equals.)  Candidates of the stdlib address classes are tested
    here on their integer; any other value goes through ``ip_matcher``'s test."""
    s4, s6, n4, n6 = _ip_sets(consts)
    other = ip_matcher(consts)

    def any_of(values: Any) -> bool:
        if not values:
            return False
        for v in values:
            if v is None:
                continue
            cls = v.__class__
            if cls is _V4:
                ip, s, ns = v._ip, s4, n4
            elif cls is _V6:
                ip, s, ns = v._ip, s6, n6
            else:
                if other(v):
                    return True
                continue
            if ip in s:
                return True
            for net, mask in ns:
                if ip & mask == net:
                    return True
        return False

    return any_of


def any_of(pred: Callable[[Any], Any], values: Any) -> bool:
    """An "any of" or list field: true when some (non-missing) candidate passes ``pred``."""
    if not values:
        return False
    for v in values:  # noqa: SIM110 - a plain loop is faster than any()
        if v is not None and pred(v):
            return True
    return False
