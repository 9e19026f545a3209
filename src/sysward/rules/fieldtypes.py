"""The types of the field registry: what a field is (``FieldDef``), what it is bound to in a
condition (``BoundField``), its value type and argument kind, and its per-type inline form.

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

The field classes (``sysward.rules.fieldsets``) build their entries from these types, and the
registry (``sysward.rules.fields``) collects them: both import this module, never each other
the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sysward.errors import SyswardError
from sysward.events.model import Event

Extractor = Callable[[Event], Any]

NA = "<NA>"  # how Falco prints a missing value


class FieldError(SyswardError, ValueError):
    """An unknown field, or a field used with a missing or malformed argument."""


class UnknownFieldError(FieldError):
    """The name is not a field at all (a rule with ``skip-if-unknown-filter`` is skipped)."""


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


def simple(fn: Extractor) -> Callable[[Any], Extractor]:
    """The factory of a field that takes no argument: ``fn`` whatever was written."""
    return lambda _arg: fn


def no_value(_arg: Any) -> Extractor:
    """The factory of a field sysward cannot fill: every event gives None (<NA>)."""
    return lambda e: None


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
