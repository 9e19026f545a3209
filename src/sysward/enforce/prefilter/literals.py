"""What a prefilter literal is: the kernel's integer inputs and set kinds, feature tests and set
tests (bpf/prefilter.h's enums), and the helpers that read a comparison's constants.

sysward.enforce.prefilter.atoms turns comparisons into these literals, per event type
(sysward.enforce.prefilter.sockatoms for the fields of socket events).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sysward.enforce.kcond import Literal, Undecidable
from sysward.events.text import KERNEL_TEXT_ERRORS
from sysward.rules.ast import Compare, ListValue, Str, to_text

_EQ = frozenset({"=", "==", "in"})
_ALL = (1 << 64) - 1

#: bytes of a path (or a name, or the path argument as passed) the kernel compares:
#: longer ones are "unknown" there (PF_KEY_DATA less the type id byte and the NUL, less one:
#: a string of 254 bytes cannot be told from a longer one cut by the read)
KEY_MAX = 253
#: bytes of a task comm, NUL excluded (longer rule values can never match it)
COMM_MAX = 15


class Input(enum.IntEnum):
    """Integer inputs of the feature bits (enum pf_input of bpf/sw_prefilter.h)."""

    I0 = 0
    I1 = 1
    I2 = 2
    I3 = 3
    RES = 4
    EUID = 5
    PATHBITS = 6  # PB_* bits of the resolved path; all ones while it is unknown
    LOGINUID = 7  # the audit login uid, -1 when unset (as user.loginuid shows it)


#: Input.PATHBITS: some component of the path starts with '.'
PB_DOT = 1


class FeatOp(enum.IntEnum):
    MASK_EQ = 0  # (x & mask) == value
    LT = 1  # x < value, signed


class Kind(enum.IntEnum):
    """Set-test kinds (enum pf_kind): one lookup each."""

    COMM = 0
    PATH = 1
    NAME = 2
    PATHBITS = 3  # not a set: marks the clauses whose features need the resolved path
    ADDR = 4  # a socket record's first address (sw_sock.addr): LPM of (family, address)
    SADDR = 5  # its second address (sw_sock.saddr)
    PORT = 6  # the port of the first end (sw_sock.port): hash
    SPORT = 7  # the port of the second end (sw_sock.sport)


KIND_MAX = 8

#: socket records: the integer inputs (i0..i3) the sensor hands over, from sw_sock
SOCK_FAMILY, SOCK_PORT, SOCK_SPORT, SOCK_KIND = Input.I0, Input.I1, Input.I2, Input.I3


@dataclass(frozen=True, slots=True)
class Feature:
    input: Input
    op: FeatOp
    mask: int
    value: int

    def holds(self, x: int) -> bool:
        if self.op is FeatOp.LT:
            return x < self.value
        return (x & self.mask) == self.value


@dataclass(frozen=True, slots=True)
class IntTest:
    """True when any of ``anyof`` holds."""

    anyof: tuple[Feature, ...]
    text: str
    #: the literal is positive exactly when ``text`` holds (False: when it does not)
    text_positive: bool = True


#: a path entry: (bytes, exact); exact entries match the whole key, others are prefixes
Entry = tuple[bytes, bool]


@dataclass(frozen=True, slots=True)
class SetTest:
    """The key of ``kind`` is in ``values``.  A positive PATH test may carry ``names``: the
    base names it implies (a cheaper test the kernel makes first)."""

    kind: Kind
    values: frozenset[Any]
    text: str
    names: frozenset[Entry] | None = None


Test = IntTest | SetTest


def _values(node: Compare) -> list[str]:
    rhs = node.rhs
    if isinstance(rhs, Str):
        return [rhs.value]
    if isinstance(rhs, ListValue):
        return [i.value for i in rhs.items]
    raise Undecidable(f"'{to_text(node)}' compares with something other than constants")


def _int(text: str, node: Compare) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise Undecidable(f"'{to_text(node)}': '{text}' is not a number") from None


def _numeric(node: Compare, inp: Input, negated: bool) -> Literal:
    """``x op N`` on an integer input."""
    op = node.op
    text = to_text(node)
    if op in _EQ:
        feats = tuple(Feature(inp, FeatOp.MASK_EQ, _ALL, _int(v, node) & _ALL)
                      for v in _values(node))
        return IntTest(feats, text), not negated
    if not isinstance(node.rhs, Str):
        raise Undecidable(f"'{text}' is not a comparison with one number")
    n = _int(node.rhs.value, node)
    if not -(1 << 63) <= n < (1 << 63) - 1:
        raise Undecidable(f"'{text}': {n} is out of range")
    if op == "!=":
        return IntTest((Feature(inp, FeatOp.MASK_EQ, _ALL, n & _ALL),), text, False), negated
    if op == "<":
        return IntTest((Feature(inp, FeatOp.LT, 0, n),), text), not negated
    if op == "<=":
        return IntTest((Feature(inp, FeatOp.LT, 0, n + 1),), text), not negated
    if op == ">":
        return IntTest((Feature(inp, FeatOp.LT, 0, n + 1),), text, False), negated
    if op == ">=":
        return IntTest((Feature(inp, FeatOp.LT, 0, n),), text, False), negated
    raise Undecidable(f"'{text}' uses operator '{op}' on a number")


def _entries(node: Compare, values: list[str], prefix: bool) -> frozenset[Entry]:
    out: set[Entry] = set()
    for v in values:
        raw = v.encode("utf-8", KERNEL_TEXT_ERRORS)
        if len(raw) > KEY_MAX:
            if prefix:  # a longer prefix than the kernel compares: it cannot say no
                raise Undecidable(f"'{to_text(node)}': '{v}' is longer than the kernel "
                                  "compares")
            continue  # never equal to a key the kernel knows
        out.add((raw, not prefix))
    return frozenset(out)


__all__ = ["COMM_MAX", "Entry", "FeatOp", "Feature", "Input", "IntTest", "KEY_MAX", "KIND_MAX",
           "Kind", "PB_DOT", "SOCK_FAMILY", "SOCK_KIND", "SOCK_PORT", "SOCK_SPORT", "SetTest",
           "Test"]
