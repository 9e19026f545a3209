"""Inlining: a field's per-event-type expression pasted into a matcher for that type.

A field may give, for one event type, its value as a Python expression over ``e``
(``sysward.rules.fieldtypes.Inline``): ``$t`` is a temporary local, ``$(other.field)`` that
field's value (extracted once per event), ``$name`` one of the helpers in ``names``.
``expand`` turns it into source the matcher can hold; the generator caches the result per
(field, argument) and falls back to the extractor call when a field has no inline form.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

PLACEHOLDER = re.compile(r"\$\(([^)]+)\)|\$([A-Za-z_]\w*)")


class InlineSpec(Protocol):
    @property
    def expr(self) -> str: ...

    @property
    def names(self) -> dict[str, Any]: ...


def expand(spec: InlineSpec, tmp: str, field_expr: Callable[[str], str],
           bind: Callable[[Any], str]) -> str:
    """The inline expression with its placeholders replaced: ``$t`` by ``tmp``, ``$(f)`` by
    ``field_expr(f)``, ``$name`` by the namespace name ``bind`` gives its helper."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return field_expr(m.group(1))
        name = m.group(2)
        return tmp if name == "t" else bind(spec.names[name])

    return "(" + PLACEHOLDER.sub(sub, spec.expr) + ")"
