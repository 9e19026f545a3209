"""Output templates: ``%proc.name``, ``%proc.aname[2]``, ``%evt.arg.flags``, ``%12proc.name``.

Syntax, as Falco's formatter reads it: ``%`` then an optional width (digits: the value is
padded or cut to that many characters), then a field name with its optional ``[arg]``.  A
value the event does not have prints as ``<NA>`` (Falco always formats rule outputs in its
"print what you have" mode).  A template naming an unknown field is a load error, as in Falco.

The template is split into literal text and bound fields once, at load time, and written out
as one generated Python function: each distinct field extracted once, rendered once, its
text used for the line and for ``output_fields`` alike, the line built by one f-string.  A
loop over the parts costs several calls per field; alerts are rendered on the rule worker,
so every microsecond here is taken from event evaluation (``sysward bench alerts``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from sysward.rules.codegen import CompileError, Registry, field_kind
from sysward.rules.diagnostics import LOAD_ERR_COMPILE_OUTPUT
from sysward.rules.fieldtypes import _render_plain

NA = "<NA>"

_TOKEN = re.compile(
    r"%(?P<width>\d*)(?P<name>[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)+)"
    r"(?:\[(?P<arg>[^\]\s]*)\])?"
)


class Template:
    __slots__ = ("text", "_parts", "fields", "render", "line_has_values")

    def __init__(self, text: str, parts: list[Any], fields: list[tuple[str, Any]]) -> None:
        self.text = text
        # str for literal text, or (key, extract, render, width, kind)
        self._parts = parts
        self.fields = fields  # (key as written, BoundField), in order, unique keys
        self.render: Callable[[Any], tuple[str, dict[str, Any]]] = _generate(parts)
        #: Every string in the rendered values is a whole piece of the line (no field is cut
        #: to a width): when the line is ASCII, so are they, and ``alert_for`` need not walk
        #: the values to make them printable.
        self.line_has_values = all(type(p) is str or not p[3] for p in parts)

    def render_by_parts(self, event: Any) -> tuple[str, dict[str, Any]]:
        """The same result as ``render``, by a plain loop (the reference the tests compare
        the generated function with)."""
        out: list[str] = []
        values: dict[str, Any] = {}
        for part in self._parts:
            if type(part) is str:
                out.append(part)
                continue
            key, extract, render, width, kind = part
            value = extract(event)
            if value is None or (type(value) is tuple and not value):
                text = NA
                values[key] = None
            else:
                text = render(value)
                values[key] = _json_value(value, text, kind)
            if width:
                text = text[:width].ljust(width)
            out.append(text)
        return "".join(out), values


def _generate(parts: list[Any]) -> Callable[[Any], tuple[str, dict[str, Any]]]:
    """One function rendering ``parts``: see the module doc."""
    ns: dict[str, Any] = {"__builtins__": {}, "NA": NA, "_json": _json_value,
                          "_tuple": tuple, "str": str, "int": int}
    body: list[str] = []
    seen: dict[str, int] = {}  # key -> index of its locals
    pieces: list[str] = []
    for part in parts:
        if type(part) is str:
            name = f"L{len(ns)}"
            ns[name] = part
            pieces.append(name)
            continue
        key, extract, render, width, kind = part
        i = seen.get(key)
        if i is None:
            i = seen[key] = len(seen)
            ns[f"x{i}"], ns[f"r{i}"], ns[f"k{i}"] = extract, render, kind
            # a plain string renders as itself; anything else through the field's renderer
            text = f"v{i} if v{i}.__class__ is str else r{i}(v{i})"
            json = f"t{i}" if kind == "str" else f"_json(v{i}, t{i}, k{i})"
            body += [f"    v{i} = x{i}(e)",
                     f"    if v{i} is None or (v{i}.__class__ is _tuple and not v{i}):",
                     f"        t{i} = NA; j{i} = None"]
            if kind == "num" and render is _render_plain:
                # a plain number (most pids, uids, results): its digits, and itself in the
                # values (what _json_value decides for it, without its calls)
                body += [f"    elif v{i}.__class__ is int:",
                         f"        t{i} = str(v{i}); j{i} = v{i}"]
            body += ["    else:",
                     f"        t{i} = {text}; j{i} = {json}"]
        if width:
            name = f"w{len(ns)}"
            ns[name] = width
            body.append(f"    p{len(pieces)} = t{i}[:{name}].ljust({name})")
            pieces.append(f"p{len(pieces)}")
        else:
            pieces.append(f"t{i}")
    line = "f\"" + "".join("{" + p + "}" for p in pieces) + "\""
    values = "{" + ", ".join(f"{key!r}: j{i}" for key, i in seen.items()) + "}"
    src = "def render(e):\n" + "\n".join(body) + f"\n    return {line}, {values}\n"
    exec(compile(src, "<sysward-output-template>", "exec"), ns)  # noqa: S102 - our own source
    fn: Callable[[Any], tuple[str, dict[str, Any]]] = ns["render"]
    return fn


def _json_value(value: Any, text: str, kind: str) -> Any:
    """What goes into ``output_fields``: numbers stay numbers unless rendered symbolically."""
    if kind in ("num", "bool") and isinstance(value, int | float) and text == str(value).lower():
        return value
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    return text


def compile_template(text: str, registry: Registry,
                     locate: Callable[[int], Any] | None = None) -> Template:
    """Bind every ``%field`` of ``text``; CompileError (LOAD_ERR_COMPILE_OUTPUT) when one fails."""
    parts: list[Any] = []
    fields: dict[str, Any] = {}
    last = 0
    for m in _TOKEN.finditer(text):
        if m.start() > last:
            parts.append(text[last:m.start()])
        name, arg = m.group("name"), m.group("arg")
        key = name if arg is None else f"{name}[{arg}]"
        try:
            bound = registry.resolve(name, arg)
        except ValueError as exc:
            raise _OutputError(str(exc), m.start(), key) from None
        width = int(m.group("width")) if m.group("width") else 0
        parts.append((key, bound.extract, bound.render, width, field_kind(bound)))
        fields.setdefault(key, bound)
        last = m.end()
    if last < len(text):
        parts.append(text[last:])
    # merge adjacent literal pieces
    merged: list[Any] = []
    for p in parts:
        if merged and type(p) is str and type(merged[-1]) is str:
            merged[-1] += p
        else:
            merged.append(p)
    return Template(text, merged, list(fields.items()))


class _OutputError(CompileError):
    def __init__(self, message: str, offset: int, key: str) -> None:
        super().__init__(message, None, LOAD_ERR_COMPILE_OUTPUT)
        self.offset = offset
        self.key = key
