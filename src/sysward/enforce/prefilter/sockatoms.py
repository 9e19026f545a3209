"""The prefilter's atoms of socket events: family, type, addresses, networks, ports, unix path.

A socket record (``sw_sock``: connect, accept, accept4, bind, listen) has two *ends* on the
wire: ``addr``/``port`` and ``saddr``/``sport``.  Which end a Falco field names depends on
the caller's role (``EventType.sock_role``, as sysward.rules.fieldsets.fd reads it): for a
connect the server is the peer (``addr``), for an accept the server is the local end
(``saddr``), bind and listen know only their local end (``addr``).  An end *exists* when its
address is an IP address, which the record's family decides: AF_INET and AF_INET6 ends
exist; a unix socket's ``addr`` is its path, which is an IP address only for a relative path
that happens to read as one, so such an end is *unknown* to the kernel (the clauses testing it
stay alive); every other end is absent (its tests fail, their negations hold).

So each field test becomes a test of one end's key (Kind.ADDR / SADDR: the address in an LPM
trie of (family, address) with networks as prefixes; Kind.PORT / SPORT: the port in a hash),
and the two-ended fields of Falco (``fd.ip``, ``fd.net``, ``fd.port``: either end) become a
disjunction over the ends.  ``!=`` is not the negation of ``=`` on these fields: a field with
no value makes both false, and on the two-ended fields ``!=`` holds only when *neither* end
equals (and there is an end).  Such a test is lowered to an equivalent condition over
"the end exists" (a set test of the address against the whole address space of both
families, so that an unknown end stays unknown under ``not`` too) and the plain tests.

``fd.typechar``, ``fd.type`` and ``fd.sockfamily`` are tests of the family (exact for every
socket type and for ``socket``, whose domain is its first argument); ``fd.name`` of a unix
socket is its path (set tests of Kind.PATH on the record's path, exact and by prefix, for
constants that start with '/': an IP socket's name never does).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from sysward.enforce.kcond import Literal, Undecidable
from sysward.enforce.prefilter.literals import FeatOp, Feature, Input, IntTest, Kind, SetTest
from sysward.enforce.prefilter.literals import _entries as entries
from sysward.enforce.prefilter.literals import _numeric as numeric
from sysward.enforce.prefilter.literals import _values as values_of
from sysward.events.types import BY_NAME
from sysward.rules import render as r
from sysward.rules.ast import And, Compare, FieldRef, Node, Not, Or, Str, to_text
from sysward.rules.fieldsets.fd import TYPE_NAMES

SOCK_FAMILY, SOCK_PORT, SOCK_SPORT = Input.I0, Input.I1, Input.I2
_ALL = (1 << 64) - 1
_EQ = frozenset({"=", "==", "in"})

#: an address entry: (family, network address bytes, prefix bits)
Net = tuple[int, bytes, int]
#: "the end exists": every address of both families
ANY_ADDRESS: frozenset[Net] = frozenset({(r.AF_INET, b"\0" * 4, 0),
                                         (r.AF_INET6, b"\0" * 16, 0)})

#: the socket event types whose ends the prefilter tests (dup* guesses its roles from the
#: ports: left to user space)
SOCK_TYPES = frozenset(t.name for t in BY_NAME.values() if t.sock_role is not None)
#: role -> (client, server, local, remote) end: "a" (addr/port), "s" (saddr/sport) or None
_ENDS: dict[str, dict[str, str | None]] = {
    "client": {"c": "s", "s": "a", "l": "s", "r": "a"},
    "server": {"c": "a", "s": "s", "l": "s", "r": "a"},
    "bound": {"c": None, "s": "a", "l": "a", "r": None},
}
_ADDR_KIND = {"a": Kind.ADDR, "s": Kind.SADDR}
_PORT_KIND = {"a": Kind.PORT, "s": Kind.SPORT}
_PORT_INPUT = {"a": SOCK_PORT, "s": SOCK_SPORT}

# synthetic fields of the lowered conditions (a rule cannot name them: '%' is no field char)
_EXISTS, _IP, _PORT = "%end.exists.", "%end.ip.", "%end.port."


def ends_of(evt: str) -> tuple[str, ...]:
    """The wire ends the event's args show ("a", "s"): bind and listen have no saddr."""
    et = BY_NAME[evt]
    return tuple(e for e, key in (("a", "addr"), ("s", "saddr"))
                 if any(k == key for k, _ in et.sock))


def _synth(node: Compare, field: str, op: str) -> Compare:
    return Compare(FieldRef(field, pos=node.pos, origin=node.origin), op, node.rhs,
                   pos=node.pos, origin=node.origin)


def _and(node: Compare, *kids: Node) -> Node:
    return And(tuple(kids), pos=node.pos, origin=node.origin)


def _or(node: Compare, kids: list[Node]) -> Node:
    if len(kids) == 1:
        return kids[0]
    return Or(tuple(kids), pos=node.pos, origin=node.origin)


def _not(node: Compare, kid: Node) -> Node:
    return Not(kid, pos=node.pos, origin=node.origin)


def _nets(node: Compare) -> frozenset[Net]:
    from sysward.rules.codegen.values import parse_net

    out: set[Net] = set()
    for v in values_of(node):
        c = parse_net(v, node, to_text(node))
        if isinstance(c, ipaddress.IPv4Network | ipaddress.IPv6Network):
            fam = r.AF_INET if c.version == 4 else r.AF_INET6
            out.add((fam, c.network_address.packed, c.prefixlen))
        else:
            fam = r.AF_INET if c.version == 4 else r.AF_INET6
            out.add((fam, c.packed, len(c.packed) * 8))
    return frozenset(out)


def _ports(node: Compare) -> frozenset[int]:
    from sysward.rules.codegen.values import parse_number

    out: set[int] = set()
    for v in values_of(node):
        n = parse_number(v, node, to_text(node))
        if isinstance(n, float):
            if not n.is_integer():
                continue  # never equal to a port
            n = int(n)
        if 0 <= n <= 0xFFFF:
            out.add(n)  # others never equal a port
    return frozenset(out)


def _end_field(name: str, evt: str) -> tuple[str, list[str]] | None:
    """(what, ends) for a socket field of ``evt``: what is "ip" or "port"; None: not one."""
    role = BY_NAME[evt].sock_role
    if role is None or not name.startswith("fd."):
        return None
    f = name[3:]
    both = ends_of(evt)
    if f in ("ip", "net"):
        return "ip", list(both)
    if f == "port":
        return "port", list(both)
    if f[:1] in ("c", "s", "l", "r") and f[1:] in ("ip", "net", "port"):
        end = _ENDS[role][f[0]]
        return ("port" if f[1:] == "port" else "ip"), ([end] if end is not None else [])
    return None


def lower_end_field(node: Compare, name: str, evt: str) -> Node | bool | None:
    """An address or port field of a socket event as a condition over the ends' tests
    (None: ``name`` is no such field)."""
    got = _end_field(name, evt)
    if got is None:
        return None
    what, ends = got
    op = "=" if node.op == "==" else node.op
    multi = name in ("fd.ip", "fd.net", "fd.port")
    if not ends:
        return False  # the field has no value on this type: every comparison is false
    plain = _IP if what == "ip" else _PORT
    if op in ("=", "in", "intersects") or (what == "port" and op in ("<", "<=", ">", ">=")
                                           and not multi):
        if what == "port" and op in ("<", "<=", ">", ">="):
            return _and(node, _synth(node, _EXISTS + ends[0], "exists"),
                        _synth(node, plain + ends[0], op))
        return _or(node, [_synth(node, plain + e, "in") for e in ends])
    if op == "!=":
        # some end exists, and no end equals (one end: it exists and does not equal)
        if not isinstance(node.rhs, Str):
            raise Undecidable(f"'{to_text(node)}' is not a comparison with one value")
        exists = _or(node, [_synth(node, _EXISTS + e, "exists") for e in ends])
        return _and(node, exists, *(_not(node, _synth(node, plain + e, "in")) for e in ends))
    if what == "port" and multi and op in ("<", "<=", ">", ">="):
        return _or(node, [_and(node, _synth(node, _EXISTS + e, "exists"),
                               _synth(node, plain + e, op)) for e in ends])
    raise Undecidable(f"'{to_text(node)}': the kernel compares addresses and ports with "
                      "'=', 'in' and '!=' (ports also with '<', '<=', '>', '>=')")


def end_leaf(node: Compare, name: str, negated: bool) -> Literal | None:
    """The literal of one synthetic end test (None: ``name`` is not one)."""
    # the record's own names in messages: addr/port, saddr/sport
    text = to_text(node)
    for pre, label in ((_IP, "addr"), (_PORT, "port")):
        text = text.replace(pre + "a", label).replace(pre + "s", "s" + label)
    if name.startswith(_EXISTS):
        end = name[len(_EXISTS):]
        return SetTest(_ADDR_KIND[end], ANY_ADDRESS, f"{'saddr' if end == 's' else 'addr'} "
                       "is an IP address"), not negated
    if name.startswith(_IP):
        end = name[len(_IP):]
        return SetTest(_ADDR_KIND[end], _nets(node), text), not negated
    if name.startswith(_PORT):
        end = name[len(_PORT):]
        if node.op == "in":
            return SetTest(_PORT_KIND[end], _ports(node), text), not negated
        return numeric(node, _PORT_INPUT[end], negated)
    return None


def family_test(node: Compare, negated: bool, value_of: Callable[[int], str | None],
                inp: Input) -> Literal | bool:
    """A string field that is a function of the socket family (fd.typechar, fd.type,
    fd.sockfamily): the families for which the comparison holds, as feature tests."""
    text = to_text(node)
    op = "=" if node.op == "==" else node.op
    vals = values_of(node)
    preds: dict[str, Callable[[str], bool]] = {
        "=": lambda v: v in vals, "in": lambda v: v in vals, "!=": lambda v: v not in vals,
    }
    pred = preds.get(op)
    if pred is None or (op != "in" and len(vals) != 1):
        raise Undecidable(f"'{text}': the kernel tests the socket family with '=', 'in' "
                          "and '!='")
    other = 64  # every family from here on has no name of its own: stands for all of them

    def holds(fam: int) -> bool:
        v = value_of(fam)
        return v is not None and pred(v)

    sat = [f for f in range(other) if holds(f)]
    if not holds(other):
        if not sat:
            return negated
        return IntTest(tuple(Feature(inp, FeatOp.MASK_EQ, _ALL, f) for f in sat), text), \
            not negated
    unsat = [f for f in range(other) if not holds(f)]
    if not unsat:
        return not negated
    # holds for all but a few families: the literal "family in unsat", with its sign flipped
    return IntTest(tuple(Feature(inp, FeatOp.MASK_EQ, _ALL, f) for f in unsat), text,
                   False), negated


_FAMILY_CHAR = {r.AF_INET: "4", r.AF_INET6: "6", r.AF_UNIX: "u", r.AF_NETLINK: "n"}


def typechar_of(fam: int) -> str:
    return _FAMILY_CHAR.get(fam, "o")


def type_of(fam: int) -> str:
    return TYPE_NAMES.get(typechar_of(fam), "unknown")


def sockfamily_of(fam: int) -> str | None:
    if fam in (r.AF_INET, r.AF_INET6):
        return "ip"
    return "unix" if fam == r.AF_UNIX else None


def unix_path_test(node: Compare, negated: bool) -> Literal:
    """fd.name of a socket event with constants that start with '/': the unix socket's path
    (an IP socket's name is 'client:port->server:port', which never starts with '/')."""
    text = to_text(node)
    vals = values_of(node)
    if node.op not in ("=", "==", "in", "startswith") or not vals or not all(
            v.startswith("/") for v in vals):
        raise Undecidable(f"'{text}': the kernel tests a socket's fd.name only as a unix "
                          "path ('=', 'in', 'startswith' with absolute paths)")
    return SetTest(Kind.PATH, entries(node, vals, prefix=node.op == "startswith"), text), \
        not negated


__all__ = ["ANY_ADDRESS", "Net", "SOCK_TYPES", "end_leaf", "ends_of", "family_test",
           "lower_end_field", "sockfamily_of", "type_of", "typechar_of", "unix_path_test"]
