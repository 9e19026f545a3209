"""The field registry: every ``class.field`` a condition or an output template can name.

A field has a type, a one-line description, the kind of argument it takes (``proc.aname[2]``,
``evt.arg.flags``, ``proc.env[HOME]``) and an extractor factory.  The parser asks
``is_field(name)`` to tell a field from a macro; the compiler calls ``resolve(name, arg)`` and
gets a ``BoundField`` whose ``extract(event)`` returns the value (or None when the event does
not have it, which Falco calls a missing field) and whose ``render(value)`` prints it the way
Falco does in outputs (a missing value prints ``<NA>``).

The types (FieldDef, FieldType, ArgKind, BoundField, Inline: ``sysward.rules.fieldtypes``,
re-exported here) and the field classes (``sysward.rules.fieldsets``, one module per class)
live below this module; this module only holds the lookup and the argument parsing.
Extractors run for every event that reaches a rule, so they are plain functions over
``Event`` attributes: no copies, no I/O.
"""

from __future__ import annotations

import difflib
from functools import cache

from sysward.rules.fieldsets import all_field_defs
from sysward.rules.fieldtypes import (
    NA,
    ArgKind,
    BoundField,
    Extractor,
    FieldDef,
    FieldError,
    FieldType,
    Inline,
    UnknownFieldError,
)

__all__ = ["NA", "ArgKind", "BoundField", "Extractor", "FieldDef", "FieldError", "FieldType",
           "Inline", "UnknownFieldError", "all_fields", "is_field", "resolve"]


@cache
def _registry() -> dict[str, FieldDef]:
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
        raise UnknownFieldError(
            f"unknown field '{base}'{hint}; 'sysward rules fields' lists them all.")
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
