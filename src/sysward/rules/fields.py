"""The field registry: every ``class.field`` a condition or an output template can name.

A field has a type, a one-line description, the kind of argument it takes (``proc.aname[2]``,
``evt.arg.flags``, ``proc.env[HOME]``) and an extractor factory.  The parser asks
``is_field(name)`` to tell a field from a macro; the compiler calls ``resolve(name, arg)`` and
gets a ``BoundField`` whose ``extract(event)`` returns the value (or None when the event does
not have it, which Falco calls a missing field) and whose ``render(value)`` prints it the way
Falco does in outputs (a missing value prints ``<NA>``).

Value types returned by ``extract``:

=========  ===================================================================================
STRING     ``str``
INT/PORT   ``int``; RELTIME/ABSTIME are ``int`` nanoseconds
BOOL       ``bool``
IPADDR     ``ipaddress.IPv4Address`` / ``IPv6Address``
IPNET      the *address* (as IPADDR); the condition's operand is a network (``"10.0.0.0/8"``)
           and ``=`` / ``in`` mean "the address lies in that network", as in Falco
LIST       ``tuple[str, ...]``
=========  ===================================================================================

``BoundField.multi`` marks Falco's filter-only "any of" fields (``proc.aname`` without an index,
``fd.ip``, ``fd.port``, ``fd.net``): ``extract`` returns a tuple of candidate values of
``type`` and a comparison holds when it holds for at least one candidate (an empty tuple
never matches).

The field classes live in ``sysward.rules.fieldsets`` (one module per class); this module only
holds the types, the lookup and the argument parsing.  Extractors run for every event that
reaches a rule, so they are plain functions over ``Event`` attributes: no copies, no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from typing import Any

from sysward.errors import SyswardError
from sysward.events.model import Event

Extractor = Callable[[Event], Any]

NA = "<NA>"  # how Falco prints a missing value


class FieldError(SyswardError, ValueError):
    """An unknown field, or a field used with a missing or malformed argument."""


class FieldType(Enum):
    STRING = "string"
    INT = "int"
    BOOL = "bool"
    IPADDR = "ipaddr"
    IPNET = "ipnet"
    PORT = "port"
    LIST = "list"
    ABSTIME = "abstime"  # ns since the epoch
    RELTIME = "reltime"  # ns duration


class ArgKind(Enum):
    """What may follow a field's name."""

    NONE = "none"  # proc.name
    INDEX = "index"  # proc.aname[2]; without an index: "any ancestor" (multi)
    KEY = "key"  # evt.arg.flags / evt.arg[flags] / proc.env[HOME]; required
    KEY_OPTIONAL = "key-optional"  # proc.env or proc.env[HOME]
    ARG = "arg"  # evt.arg: a name (evt.arg.flags) or a position (evt.arg[1]); required


def _render_plain(value: Any) -> str:
    if value is None:
        return NA
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, tuple):
        return "(" + ",".join(_render_plain(v) for v in value) + ")"
    return str(value)


@dataclass(frozen=True, slots=True)
class Inline:
    """A field's value for events of one known type, as a Python expression over ``e``.

    The rule compiler generates one matcher per event type; an extractor that first asks
    "which type is this?" and then calls helpers costs several Python calls per event, while
    the same work written out for the type is a few bytecodes.  ``expr`` may use ``$t`` (a
    temporary local), ``$(other.field)`` (that field's value, extracted once per event) and
    ``$name`` for each entry of ``names`` (helpers and constants).  It must give exactly the
    value the generic extractor gives for that event type (tests/unit/test_rules_inline.py
    checks every field on every type).
    """

    expr: str
    names: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One registry entry.  ``factory(arg)`` builds the extractor for one written argument.

    ``arg`` is None when the field was written without one; for ArgKind.INDEX it is an int.
    ``availability`` tells the docs where the value comes from, or why it may be missing.
    """

    name: str
    type: FieldType
    desc: str
    factory: Callable[[Any], Extractor]
    arg: ArgKind = ArgKind.NONE
    multi: bool = False  # "any of" semantics even without an argument (fd.ip)
    filter_only: bool = False  # Falco allows it in conditions only
    availability: str = ""
    render: Callable[[Any], str] = field(default=_render_plain)
    type_for: Callable[[Any], FieldType] | None = None  # type depends on the argument
    #: ``inline(arg, evt_type)``: the extractor written out for one event type, for the
    #: rule compiler to paste into a per-type matcher (see ``Inline``); None: use ``factory``
    inline: Callable[[Any, str], Inline | None] | None = None

    def bind(self, written: str, arg: Any) -> BoundField:
        multi = self.multi or (self.arg is ArgKind.INDEX and arg is None)
        ftype = self.type if self.type_for is None else self.type_for(arg)
        return BoundField(written, ftype, self.factory(arg), self.render, multi, self, arg)


@dataclass(frozen=True, slots=True)
class BoundField:
    """A field as written in a condition or template, bound to its argument."""

    name: str  # as written: "proc.aname[2]", "evt.arg.flags"
    type: FieldType
    extract: Extractor
    render: Callable[[Any], str]
    multi: bool = False
    definition: FieldDef | None = None
    arg: Any = None


@cache
def _registry() -> dict[str, FieldDef]:
    # Imported here: the field sets import this module for FieldDef/FieldType.
    from sysward.rules.fieldsets import all_field_defs

    table: dict[str, FieldDef] = {}
    for fdef in all_field_defs():
        if fdef.name in table:
            raise AssertionError(f"field {fdef.name} registered twice")
        table[fdef.name] = fdef
    return table


@cache
def _dotted_prefixes() -> tuple[str, ...]:
    """Fields that accept a dotted argument (evt.arg.flags), longest first."""
    names = [n for n, f in _registry().items() if f.arg in (ArgKind.KEY, ArgKind.ARG,
                                                             ArgKind.KEY_OPTIONAL)]
    return tuple(sorted(names, key=len, reverse=True))


def all_fields() -> list[FieldDef]:
    """Every field, sorted by class then name (the order of docs/fields.md)."""
    return sorted(_registry().values(), key=lambda f: (f.name.split(".", 1)[0], f.name))


def _split(name: str, arg: str | None) -> tuple[FieldDef | None, str, str | None, bool]:
    """Find the definition for ``name`` (which may carry ``[arg]`` or a dotted argument).

    Returns (definition or None, base name, argument text or None, argument came inside name).
    """
    in_name = False
    base = name
    if name.endswith("]") and "[" in name:
        if arg is not None:
            raise FieldError(f"field '{name}' is given two arguments ('{arg}' too).")
        base, _, rest = name.partition("[")
        arg = rest[:-1]
        in_name = True
    table = _registry()
    fdef = table.get(base)
    if fdef is not None:
        return fdef, base, arg, in_name
    for prefix in _dotted_prefixes():
        if base.startswith(prefix + ".") and len(base) > len(prefix) + 1:
            if arg is not None:
                raise FieldError(f"field '{name}' is given two arguments ('{arg}' too).")
            return table[prefix], prefix, base[len(prefix) + 1:], True
    return None, base, arg, in_name


def is_field(name: str) -> bool:
    """True when ``name`` names a field (with or without its argument), not a macro."""
    try:
        fdef, *_ = _split(name, None)
    except FieldError:
        return True  # a field written wrongly is still a field; resolve() will say why
    return fdef is not None


def resolve(name: str, arg: str | None = None) -> BoundField:
    """Bind a field to its argument; FieldError with one clear sentence on any problem."""
    fdef, base, arg, in_name = _split(name, arg)
    if fdef is None:
        close = difflib.get_close_matches(base, _registry().keys(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise FieldError(f"unknown field '{base}'{hint}; 'sysward rules fields' lists them all.")
    written = name if arg is None or in_name else f"{name}[{arg}]"
    kind = fdef.arg
    if kind is ArgKind.NONE:
        if arg is not None:
            raise FieldError(f"field '{base}' takes no argument (got '{arg}').")
        return fdef.bind(written, None)
    if kind is ArgKind.INDEX:
        if arg is None:
            return fdef.bind(written, None)
        text = arg.strip()
        if not text.isdigit():
            raise FieldError(
                f"field '{base}' needs a number in brackets, e.g. {base}[2] (got '{arg}').")
        return fdef.bind(written, int(text))
    if arg is None or not arg.strip():
        if kind is ArgKind.KEY_OPTIONAL:
            return fdef.bind(written, None)
        form = f"{base}.NAME or {base}[N]" if kind is ArgKind.ARG else f"{base}[NAME]"
        raise FieldError(f"field '{base}' needs an argument: write {form}.")
    text = arg.strip()
    if kind is ArgKind.ARG and text.isdigit():
        return fdef.bind(written, int(text))
    return fdef.bind(written, text)
