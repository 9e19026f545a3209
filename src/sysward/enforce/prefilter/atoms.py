"""What the sensor can test before it builds a record: the prefilter's atoms, per event type.

An *atom* is one kernel-testable fact of an event:

* a **feature** bit: one integer input (an argument slot i0..i3 of the record, the result,
  the effective uid, the login uid) tested with ``(x & mask) == value`` or ``x < value``
  (signed);
* a **set** test: the event's key of one kind (``Kind``) is, or is not, in a set:
  the task's comm; the absolute path of the path argument (LPM trie: exact entries and
  prefixes); its base name (LPM trie too: exact names and name prefixes); of a socket
  record, each end's address (LPM trie of networks) and port (hash), and a unix socket's
  path (sysward.enforce.prefilter.sockatoms).

The literal types themselves are in sysward.enforce.prefilter.literals.

``leaf(evt)`` turns one comparison of a (per-type specialised) rule condition into a literal
over these atoms, or raises ``Undecidable``; the prefilter rounds what is undecidable to
"may match" (sysward.enforce.kcond).  Some comparisons become a *weaker* test that the
kernel can make (``fd.name endswith /.aws/credentials`` needs the base name
``credentials``; ``fd.directory = /etc/ssh`` needs the prefix ``/etc/ssh/``); that is only
sound for a positive literal, so their negations are undecidable.

Which event types have what is ``VIEWS`` (derived from the event table): adding an event
type to the filter is one entry there (and, on the BPF side, passing the same inputs to
``pf_check`` in its handler: see bpf/sw_prefilter.h).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sysward.enforce.kcond import Literal, Undecidable
from sysward.enforce.prefilter import sockatoms as sa
from sysward.enforce.prefilter.literals import (
    _ALL,
    _EQ,
    COMM_MAX,
    KEY_MAX,
    PB_DOT,
    Entry,
    FeatOp,
    Feature,
    Input,
    IntTest,
    Kind,
    SetTest,
    Test,
    _entries,
    _int,
    _numeric,
    _values,
)
from sysward.events.text import KERNEL_TEXT_ERRORS
from sysward.events.types import EVENT_TYPES, GROUPS, INTS, STRS, EventType
from sysward.rules import render as r
from sysward.rules.ast import And, Compare, FieldRef, Node, Str, Transform, to_text


@dataclass(frozen=True, slots=True)
class View:
    """What the sensor hands to the prefilter for one event type."""

    #: key in Event.args of the path argument the handler resolves (put_path_arg), if any
    path_arg: str | None = None
    #: the input holding open(2) flags, for the open family (creat's slot holds
    #: O_CREAT|O_WRONLY|O_TRUNC, as its args["flags"] does)
    open_flags: Input | None = None
    #: the argument names of the integer slots i0..i3 that the prefilter is handed
    ints: tuple[str, ...] = ()


_OPEN_TYPES = frozenset(GROUPS["open"])
_RES_FD_TYPES = frozenset(t.name for t in EVENT_TYPES if t.res_fd)


def _view(t: EventType) -> View:
    path = t.strs[0] if t.path0 and t.layout is STRS and t.strs else None
    flags = Input(t.ints.index("flags")) if t.flags == "open_flags" else None
    # INTS and STRS records hand their integer slots to the prefilter (sw_sock ones do not)
    ints = tuple(n or "" for n in t.ints[:4]) if t.layout in (INTS, STRS) else ()
    return View(path, flags, ints)


#: event type -> what the prefilter sees of it (every type: comm, effective uid, result)
VIEWS: dict[str, View] = {t.name: _view(t) for t in EVENT_TYPES}

# ---------------------------------------------------------------------------------------------
# comparisons -> literals

_ACC_RD, _ACC_WR, _ACC_RW = 0, r.O_WRONLY, r.O_RDWR

#: open flag names whose presence in the rendered flags is exactly a bit test (the access
#: modes and bits no other name includes), and those where the bit may be set with the name
#: absent (O_TMPFILE includes O_DIRECTORY): usable only in positive literals
_EXACT_FLAGS: dict[str, tuple[Feature, ...]] = {
    "O_RDONLY": (Feature(Input.I0, FeatOp.MASK_EQ, 3, 0),),
    "O_WRONLY": (Feature(Input.I0, FeatOp.MASK_EQ, 3, 1),),
    "O_RDWR": (Feature(Input.I0, FeatOp.MASK_EQ, 3, 2), Feature(Input.I0, FeatOp.MASK_EQ, 3, 3)),
}
for _n in ("O_CREAT", "O_TRUNC", "O_EXCL", "O_APPEND", "O_TMPFILE"):
    _bits = r._O.get(_n) or 0
    if _bits:
        _EXACT_FLAGS[_n] = (Feature(Input.I0, FeatOp.MASK_EQ, _bits, _bits),)
_POSITIVE_FLAGS: dict[str, tuple[Feature, ...]] = {
    "O_DIRECTORY": (Feature(Input.I0, FeatOp.MASK_EQ, r.O_DIRECTORY, r.O_DIRECTORY),),
}


def _retarget(feats: tuple[Feature, ...], inp: Input) -> tuple[Feature, ...]:
    return tuple(Feature(inp, f.op, f.mask, f.value) for f in feats)


def _bool_value(node: Compare) -> bool:
    if not isinstance(node.rhs, Str) or node.op not in ("=", "==", "!="):
        raise Undecidable(f"'{to_text(node)}' is not a comparison with true or false")
    v = node.rhs.value.lower()
    if v not in ("true", "false"):
        raise Undecidable(f"'{to_text(node)}' is not a comparison with true or false")
    return (v == "true") != (node.op == "!=")


def _open_class(node: Compare, view: View, negated: bool, write: bool) -> Literal | bool:
    want = _bool_value(node)
    assert view.open_flags is not None
    acc = (Feature(view.open_flags, FeatOp.MASK_EQ, 3, _ACC_WR),
           Feature(view.open_flags, FeatOp.MASK_EQ, 3, _ACC_RW))
    if write:  # O_WRONLY or O_RDWR
        return IntTest(acc, to_text(node), want), want != negated
    # read: not O_WRONLY (sysward counts every access mode but O_WRONLY as a read)
    return IntTest(acc[:1], to_text(node), not want), (not want) != negated


def _flags_contains(node: Compare, view: View, negated: bool) -> Literal:
    text = to_text(node)
    if node.op != "contains" or not isinstance(node.rhs, Str) or view.open_flags is None:
        raise Undecidable(f"'{text}' is not a test of one open flag")
    name = node.rhs.value
    feats = _EXACT_FLAGS.get(name)
    if feats is None and not negated:
        feats = _POSITIVE_FLAGS.get(name)
    if feats is None:
        raise Undecidable(f"'{text}': the kernel tests only the flags "
                          + ", ".join(sorted(_EXACT_FLAGS)))
    return IntTest(_retarget(feats, view.open_flags), text), not negated


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _path_test(node: Compare, negated: bool) -> Literal:
    """fd.name / evt.arg.<path>: exact (=, in), prefix (startswith), pmatch."""
    op = node.op
    text = to_text(node)
    values = _values(node)
    if op in _EQ:
        entries = _entries(node, values, prefix=False)
        names = _entries(node, [_basename(v) for v in values], prefix=False)
        return SetTest(Kind.PATH, entries, text, None if negated else names), not negated
    if op == "startswith":
        return SetTest(Kind.PATH, _entries(node, values, prefix=True), text), not negated
    if op == "pmatch":
        # the directory itself, or anything below it (sysward.rules.codegen.path_prefix_matcher)
        exact: list[str] = []
        below: list[str] = []
        for v in values:
            base = v.rstrip("/") if v != "/" else v
            if not base:
                continue
            if base == "/":
                below.append("/")
                continue
            exact.append(base)
            below.append(base + "/")
        entries = _entries(node, exact, prefix=False) | _entries(node, below, prefix=True)
        return SetTest(Kind.PATH, entries, text), not negated
    if op == "endswith" and not negated:
        # a suffix with a '/' fixes the base name: the part after its last '/'
        bases = [v.rsplit("/", 1)[1] for v in values if "/" in v]
        if len(bases) == len(values):
            return SetTest(Kind.NAME, _entries(node, bases, prefix=False), text), True
    dotted = _dot_component(node, values, negated)
    if dotted is not None:
        return dotted
    raise Undecidable(f"'{text}': the kernel compares paths exactly, by prefix and by pmatch")


def _dot_component(node: Compare, values: list[str], negated: bool) -> Literal | None:
    """``contains`` / ``endswith`` a text with '/.' in it: the path has a component that
    starts with '.' (weaker; positive only)."""
    if negated or node.op not in ("contains", "endswith") or not values:
        return None
    if not all("/." in v for v in values):
        return None
    return IntTest((Feature(Input.PATHBITS, FeatOp.MASK_EQ, PB_DOT, PB_DOT),),
                   to_text(node)), True


def _directory_test(node: Compare, negated: bool) -> Literal:
    """fd.directory = D / in (...): the path starts with D/ (weaker: subdirectories too)."""
    text = to_text(node)
    dotted = _dot_component(node, _values(node), negated)
    if dotted is not None:
        return dotted
    if node.op not in _EQ or negated:
        raise Undecidable(f"'{text}': the kernel tests fd.directory only as a positive "
                          "'=' or 'in' (a prefix of the path)")
    dirs = [v if v.endswith("/") else v + "/" for v in _values(node)]
    return SetTest(Kind.PATH, _entries(node, dirs, prefix=True), text), True


def _name_test(node: Compare, negated: bool) -> Literal:
    op = node.op
    text = to_text(node)
    if op in _EQ:
        return SetTest(Kind.NAME, _entries(node, _values(node), prefix=False), text), not negated
    if op == "startswith":
        return SetTest(Kind.NAME, _entries(node, _values(node), prefix=True), text), not negated
    raise Undecidable(f"'{text}': the kernel compares base names exactly and by prefix")


def _comm_test(node: Compare, negated: bool) -> Literal:
    text = to_text(node)
    op = node.op
    if op == "!=":
        op, negated = "=", not negated
    if op not in _EQ:
        raise Undecidable(f"'{text}': the kernel compares proc.name exactly")
    # a name longer than a comm never equals one: it is no entry at all
    raw = [v.encode("utf-8", KERNEL_TEXT_ERRORS) for v in _values(node)]
    values = frozenset(b for b in raw if 0 < len(b) <= COMM_MAX)
    return SetTest(Kind.COMM, values, text), not negated


def _fd_num(node: Compare, negated: bool) -> Literal:
    """fd.num of an event whose result is the new fd: the result, or -1 when it failed."""
    text = to_text(node)
    if node.op in _EQ:
        feats: list[Feature] = []
        for v in _values(node):
            n = _int(v, node)
            if n == -1:
                feats.append(Feature(Input.RES, FeatOp.LT, 0, 0))
            elif n >= 0:
                feats.append(Feature(Input.RES, FeatOp.MASK_EQ, _ALL, n))
            # below -1: never
        return IntTest(tuple(feats), text), not negated
    if node.op in (">=", ">") and isinstance(node.rhs, Str):
        n = _int(node.rhs.value, node) + (1 if node.op == ">" else 0)
        if n >= 0:  # fd.num >= n: the call succeeded with a result >= n
            return IntTest((Feature(Input.RES, FeatOp.LT, 0, n),), text, False), negated
    raise Undecidable(f"'{text}': the kernel tests fd.num only with '=', 'in', '>=' and '>'")


def _typechar(node: Compare, view: View, negated: bool) -> Literal | bool:
    """fd.typechar of an open: 'd' with O_DIRECTORY (and not O_TMPFILE), else 'f'."""
    text = to_text(node)
    op = node.op
    if op == "!=":
        op, negated = "=", not negated
    if op not in _EQ or view.open_flags is None:
        raise Undecidable(f"'{text}': the kernel tests fd.typechar of an open with '='")
    is_dir = Feature(view.open_flags, FeatOp.MASK_EQ, r.O_TMPFILE, r.O_DIRECTORY)
    chars = set(_values(node))
    if chars >= {"d", "f"}:
        return not negated
    if "d" in chars:
        return IntTest((is_dir,), text), not negated
    if "f" in chars:
        return IntTest((is_dir,), text, False), negated
    return negated  # no other character for an open


#: the integer arguments rendered through a table of names (a value outside the table renders
#: as its number), and the values that have a name: a comparison of the rendered text with
#: constants that hold no digit and no '-' is then a test of the value against a set
_ENUM_ARGS: dict[str, dict[int, str]] = {
    "request": r.PTRACE_REQUESTS, "cmd": r.BPF_CMDS, "sig": r.SIGNALS, "signal": r.SIGNALS,
    "domain": r.SOCKET_FAMILIES, "option": r.PRCTL_OPTIONS,
}
#: the same where one event type renders the argument through its own table
_ENUM_ARGS_BY_TYPE: dict[tuple[str, str], dict[int, str]] = {
    ("ioctl", "request"): r.IOCTL_REQUESTS,
}
_MAX_ENUM_VALUES = 4  # values of one such test (each is a feature bit)


def _enum_arg(node: Compare, evt: str, arg: str, inp: Input, negated: bool) -> Literal:
    from sysward.rules.fieldsets.evt import render_arg

    text = to_text(node)
    values = _values(node)
    if any(ch.isdigit() or ch == "-" for v in values for ch in v):
        raise Undecidable(f"'{text}': a number can be the rendering of a value outside the "
                          "table")
    op = node.op
    if op == "!=":
        op, negated = "=", not negated
    tests: dict[str, Callable[[str], bool]] = {
        "=": lambda t: t in values, "==": lambda t: t in values, "in": lambda t: t in values,
        "contains": lambda t: any(v in t for v in values),
        "startswith": lambda t: any(t.startswith(v) for v in values),
        "endswith": lambda t: any(t.endswith(v) for v in values),
    }
    pred = tests.get(op)
    if pred is None:
        raise Undecidable(f"'{text}': operator '{op}' on a rendered argument")
    # every value with a name, and the small numbers (signals render SIGRTMIN+n)
    domain = set(_ENUM_ARGS_BY_TYPE.get((evt, arg)) or _ENUM_ARGS[arg]) | set(range(-1, 256))
    hits = sorted(v for v in domain if pred(render_arg(evt, arg, v)))
    if len(hits) > _MAX_ENUM_VALUES:
        raise Undecidable(f"'{text}' holds for {len(hits)} values; the kernel tests at most "
                          f"{_MAX_ENUM_VALUES}")
    feats = tuple(Feature(inp, FeatOp.MASK_EQ, _ALL, v & _ALL) for v in hits)
    return IntTest(feats, text), not negated


#: string fields of a socket event that are a function of its family
_FAMILY_FIELDS: dict[str, Callable[[int], str | None]] = {
    "fd.typechar": sa.typechar_of, "fd.type": sa.type_of, "fd.sockfamily": sa.sockfamily_of}

#: (event type, argument) -> the bit table its rendering names (render_bits): `contains NAME`
#: is then a test of the bits whose names contain NAME
_FLAG_TABLES: dict[tuple[str, str], r.BitTable] = {
    ("unshare", "flags"): r.NS_FLAG_BITS, ("setns", "nstype"): r.NS_FLAG_BITS,
}
_MAX_FLAG_FEATURES = 4


def _bits_contains(node: Compare, table: r.BitTable, inp: Input, negated: bool) -> Literal:
    """``contains NAME`` on flags rendered by render_bits from a table of disjoint bit
    groups: some group whose name holds NAME is fully set (a value with no named group set
    renders as its number, which holds no name)."""
    text = to_text(node)
    if node.op != "contains" or not isinstance(node.rhs, Str):
        raise Undecidable(f"'{text}' is not a test of one flag")
    want = node.rhs.value
    seen = 0
    for _, bits in table:
        if bits & seen:
            raise Undecidable(f"'{text}': the flag table has overlapping groups")
        seen |= bits
    if not want or any(ch.isdigit() or ch == "-" for ch in want):
        raise Undecidable(f"'{text}': a number can be the rendering of unnamed bits")
    groups = [bits for name, bits in table if want in name and bits]
    if len(groups) > _MAX_FLAG_FEATURES:
        raise Undecidable(f"'{text}' names {len(groups)} flags; the kernel tests at most "
                          f"{_MAX_FLAG_FEATURES}")
    if "|" in want:
        raise Undecidable(f"'{text}' spans several flag names")
    return IntTest(tuple(Feature(inp, FeatOp.MASK_EQ, b, b) for b in groups), text), \
        not negated


def _res_names(node: Compare, negated: bool) -> Literal:
    """``evt.res = NAME`` / ``in`` / ``!=``: SUCCESS is a result >= 0, an errno name the one
    negative result that renders so (a number may render an unnamed errno: left out)."""
    text = to_text(node)
    values = _values(node)
    if node.op == "!=":
        if len(values) != 1:
            raise Undecidable(f"'{text}' is not a comparison with one value")
        negated = not negated
    if any(ch.isdigit() or ch == "-" for v in values for ch in v):
        raise Undecidable(f"'{text}': a number can be the rendering of an unnamed errno")
    errnos = sorted(n for n, name in r.ERRNO_NAMES.items() if name in values)
    success = "SUCCESS" in values
    if success and errnos:
        raise Undecidable(f"'{text}' mixes SUCCESS with errno names")
    if success:
        return IntTest((Feature(Input.RES, FeatOp.LT, 0, 0),), text, False), negated
    if len(errnos) > _MAX_ENUM_VALUES:
        raise Undecidable(f"'{text}' holds for {len(errnos)} results; the kernel tests at most "
                          f"{_MAX_ENUM_VALUES}")
    feats = tuple(Feature(Input.RES, FeatOp.MASK_EQ, _ALL, -n & _ALL) for n in errnos)
    return IntTest(feats, text), not negated


def _socket_type_contains(node: Compare, inp: Input, negated: bool) -> Literal:
    """``contains NAME`` on socket(2)'s rendered type: the kind of the low four bits (its
    name, or its number when it has none) joined with '|' to the names of the flags set."""
    text = to_text(node)
    if node.op != "contains" or not isinstance(node.rhs, Str):
        raise Undecidable(f"'{text}' is not a test of one socket type or flag")
    want = node.rhs.value
    if not want or "|" in want or any(ch.isdigit() or ch == "-" for ch in want):
        raise Undecidable(f"'{text}': a number can be the rendering of an unnamed kind")
    feats = [Feature(inp, FeatOp.MASK_EQ, 0xF, k) for k, n in r.SOCK_TYPE_NAMES.items()
             if want in n]
    feats += [Feature(inp, FeatOp.MASK_EQ, b, b) for n, b in r.SOCK_FLAG_BITS if want in n]
    if len(feats) > _MAX_FLAG_FEATURES:
        raise Undecidable(f"'{text}' names {len(feats)} kinds and flags; the kernel tests at "
                          f"most {_MAX_FLAG_FEATURES}")
    return IntTest(tuple(feats), text), not negated


def _field(node: Compare) -> str:
    lhs = node.lhs
    if (isinstance(lhs, Transform) and lhs.func == "basename" and isinstance(lhs.arg, FieldRef)
            and lhs.arg.arg is None):
        return "basename(" + lhs.arg.name + ")"
    if isinstance(lhs, FieldRef) and lhs.arg is None:
        return lhs.name
    raise Undecidable(f"'{to_text(node)}' transforms or indexes its field")


def _filename_of_open(node: Compare) -> Node:
    base = Compare(Transform("basename", FieldRef("fd.name"), pos=node.pos, origin=node.origin),
                   node.op, node.rhs, pos=node.pos, origin=node.origin)
    ok = Compare(FieldRef("evt.rawres", pos=node.pos, origin=node.origin), ">=",
                 Str("0", pos=node.pos, origin=node.origin), pos=node.pos, origin=node.origin)
    return And((base, ok), pos=node.pos, origin=node.origin)


def leaf(evt: str) -> Callable[[Compare, bool], Literal | bool | Node]:
    """The leaf function of sysward.enforce.kcond.lower for conditions on ``evt``."""
    view = VIEWS.get(evt, View())
    path_fields: set[str] = set()
    name_fields: set[str] = set()
    if view.path_arg is not None:
        path_fields.add(f"evt.arg.{view.path_arg}")
        name_fields.add(f"basename(evt.arg.{view.path_arg})")
    if evt in _OPEN_TYPES:
        path_fields.add("fd.name")
        name_fields.add("basename(fd.name)")

    sock = evt in sa.SOCK_TYPES
    family_input = Input.I0 if sock or evt == "socket" else None

    def one(node: Compare, negated: bool) -> Literal | bool | Node:
        name = _field(node)
        if name == "fd.filename" and evt in _OPEN_TYPES:
            # missing on a failed open (as in Falco: no descriptor was made), the base name
            # of fd.name otherwise: two tests the kernel makes, lowered in this one's place
            return _filename_of_open(node)
        if name == "evt.dir" and node.op in ("=", "==", "!=") and isinstance(node.rhs, Str):
            hit = (node.rhs.value == "<") != (node.op == "!=")
            return hit != negated
        if name == "proc.name":
            return _comm_test(node, negated)
        if name == "user.uid":
            return _numeric(node, Input.EUID, negated)
        if name == "user.loginuid":
            return _numeric(node, Input.LOGINUID, negated)
        if name.startswith("%end."):
            got = sa.end_leaf(node, name, negated)
            if got is not None:
                return got
        if sock:
            low = sa.lower_end_field(node, name, evt)
            if low is not None:
                return low if isinstance(low, Node) else low != negated
            if name == "fd.name":
                return sa.unix_path_test(node, negated)
        if family_input is not None and name in _FAMILY_FIELDS:
            return sa.family_test(node, negated, _FAMILY_FIELDS[name], family_input)
        if name.startswith("evt.arg.") and name[8:] in view.ints:
            table = _FLAG_TABLES.get((evt, name[8:]))
            if table is not None:
                return _bits_contains(node, table, Input(view.ints.index(name[8:])), negated)
            if (evt, name[8:]) == ("socket", "type"):
                return _socket_type_contains(node, Input(view.ints.index("type")), negated)
        if name == "evt.rawres":
            return _numeric(node, Input.RES, negated)
        if (name == "evt.res" and node.op == "startswith" and isinstance(node.rhs, Str)
                and node.rhs.value == "E" and not negated):
            # an errno name: only a failed call renders so (a success is its number)
            return IntTest((Feature(Input.RES, FeatOp.LT, 0, 0),), to_text(node)), True
        if name == "evt.res" and node.op in ("=", "==", "in", "!="):
            return _res_names(node, negated)
        if name == "fd.num" and evt in _RES_FD_TYPES:
            return _fd_num(node, negated)
        if name == "fd.typechar" and evt in _OPEN_TYPES:
            return _typechar(node, view, negated)
        if name.startswith("evt.arg.") and name[8:] in _ENUM_ARGS and name[8:] in view.ints:
            arg = name[8:]
            return _enum_arg(node, evt, arg, Input(view.ints.index(arg)), negated)
        if name in path_fields:
            return _path_test(node, negated)
        if name in name_fields:
            return _name_test(node, negated)
        if name == "fd.directory" and evt in _OPEN_TYPES:
            return _directory_test(node, negated)
        if name in ("evt.is_open_read", "evt.is_open_write") and evt in _OPEN_TYPES:
            return _open_class(node, view, negated, name == "evt.is_open_write")
        if name == "evt.arg.flags" and evt in _OPEN_TYPES:
            return _flags_contains(node, view, negated)
        raise Undecidable(f"'{to_text(node)}' tests {name}, which the sensor does not test "
                          f"for {evt}")

    return one


__all__ = ["Entry", "FeatOp", "Feature", "Input", "IntTest", "KEY_MAX", "Kind", "PB_DOT",
           "SetTest",
           "Test", "VIEWS", "View", "leaf"]
