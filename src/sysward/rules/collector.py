"""Collect: lists, macros and rules in definition order, with append / override / enabled.

Later items (and later files) amend earlier ones:

* a plain redefinition replaces the earlier definition (keeping its place in the order);
* ``append: true`` appends to the earlier definition: a list's ``items``, a macro's or rule's
  ``condition`` (joined with a blank), a rule's ``output``/``desc`` (joined with a blank),
  ``tags`` and ``exceptions``;
* ``override: {key: append|replace}`` does the same per key, and can also replace
  ``priority``, ``enabled``, ``source`` ...;
* an item with only ``rule:`` and ``enabled:`` toggles an existing rule.

Text that was appended keeps the position of each piece, so a compile error in an appended
condition still points into the file that appended it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from sysward.rules.diagnostics import (
    LOAD_DUPLICATE_RULE,
    LOAD_ERR_VALIDATE,
    LOAD_ERR_YAML_VALIDATE,
    LOAD_UNKNOWN_KEY,
    Diagnostic,
    Position,
    snippet_at,
)
from sysward.rules.reader import Item, ValueLoc

RULE_KEYS = frozenset({
    "rule", "condition", "output", "desc", "priority", "tags", "enabled", "source",
    "exceptions", "append", "override", "warn_evttypes", "skip-if-unknown-filter",
})
#: sysward's own rule keys (docs/enforcement.md); kept in ``RuleDef.extra``.
SYSWARD_RULE_KEYS = frozenset({"action", "enforce_mode", "enforce_fallback", "correlate"})
#: every key an item may carry; any other is warned about (a typo such as ``tagz:`` would
#: otherwise be ignored without a word).
KNOWN_KEYS = {
    "rule": RULE_KEYS | SYSWARD_RULE_KEYS,
    "macro": frozenset({"macro", "condition", "append", "override"}),
    "list": frozenset({"list", "items", "append", "override"}),
}
_APPENDABLE = {
    "list": frozenset({"items"}),
    "macro": frozenset({"condition"}),
    "rule": frozenset({"condition", "output", "desc", "tags", "exceptions"}),
}
_REPLACEABLE = {
    "list": frozenset({"items"}),
    "macro": frozenset({"condition"}),
    "rule": frozenset({"condition", "output", "desc", "priority", "tags", "exceptions",
                       "enabled", "warn_evttypes", "skip-if-unknown-filter", "source"}),
}


@dataclass(slots=True)
class Text:
    """A condition/output string assembled from pieces that may come from several items."""

    parts: list[tuple[str, ValueLoc | None, Position]] = field(default_factory=list)

    @classmethod
    def of(cls, value: Any, item: Item, key: str) -> Text:
        return cls([(_as_text(value), item.locs.get(key), item.pos_of(key))])

    @property
    def text(self) -> str:
        return " ".join(p[0] for p in self.parts)

    def append(self, other: Text) -> None:
        self.parts.extend(other.parts)

    def locate(self, offset: int) -> Position:
        """File position of character ``offset`` of ``self.text``."""
        start = 0
        for text, loc, pos in self.parts:
            end = start + len(text)
            if offset <= end or (text, loc, pos) == self.parts[-1]:
                local = min(max(offset - start, 0), len(text))
                if loc is not None:
                    return loc.locate(text, local)
                return pos.shifted(text, local)
            start = end + 1
        return self.parts[0][2] if self.parts else Position("<string>", 1, 1)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(slots=True)
class ListDef:
    name: str
    items: list[str]
    item: Item  # where it was (last) defined
    used: bool = False


@dataclass(slots=True)
class MacroDef:
    name: str
    condition: Text
    item: Item
    used: bool = False


@dataclass(slots=True)
class ExceptionDef:
    name: str
    fields: Any  # str or list[str]
    comps: Any  # str, list[str] or None
    values: list[Any]
    item: Item


@dataclass(slots=True)
class RuleDef:
    name: str
    item: Item
    condition: Text
    output: Text
    desc: str = ""
    priority: Any = None
    priority_pos: Position | None = None
    tags: list[str] = field(default_factory=list)
    enabled: bool = True
    source: str = "syscall"
    exceptions: list[ExceptionDef] = field(default_factory=list)
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Collection:
    lists: dict[str, ListDef] = field(default_factory=dict)
    macros: dict[str, MacroDef] = field(default_factory=dict)
    rules: dict[str, RuleDef] = field(default_factory=dict)  # insertion order = rule order
    required_engine_version: str | None = None
    required_plugins: list[Any] = field(default_factory=list)


class Collector:
    def __init__(self) -> None:
        self.col = Collection()
        self.diags: list[Diagnostic] = []

    # -- diagnostics -----------------------------------------------------------------------
    def _error(self, item: Item, key: str | None, code: str, message: str) -> None:
        pos = item.pos_of(key) if key else item.pos
        snippet = ""
        if key and key in item.data:
            snippet = snippet_at(_as_text(item.data[key]), 0)
        self.diags.append(Diagnostic(code, "error", message, pos.file, pos.line, pos.col,
                                     snippet, item.label))

    def _warn(self, item: Item, pos: Position, code: str, message: str,
              snippet: str = "") -> None:
        self.diags.append(Diagnostic(code, "warning", message, pos.file, pos.line, pos.col,
                                     snippet, item.label))

    def _unknown_keys(self, item: Item) -> None:
        known = KNOWN_KEYS[item.kind]
        for key in item.data:
            if key in known:
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else "; it is ignored"
            self._warn(item, item.key_pos.get(key, item.pos), LOAD_UNKNOWN_KEY,
                       f"unknown key '{key}' in {item.label}{hint}", key)

    # -- entry point -----------------------------------------------------------------------
    def add(self, item: Item) -> None:
        if item.kind == "required_engine_version":
            self.col.required_engine_version = _as_text(item.data[item.kind])
            return
        if item.kind == "required_plugin_versions":
            value = item.data[item.kind]
            if isinstance(value, list):
                self.col.required_plugins.extend(value)
            return
        if not self._check_mode(item):
            return
        self._unknown_keys(item)
        if item.kind == "list":
            self._add_list(item)
        elif item.kind == "macro":
            self._add_macro(item)
        else:
            self._add_rule(item)

    def _check_mode(self, item: Item) -> bool:
        append = item.data.get("append", False)
        override = item.data.get("override")
        if not isinstance(append, bool):
            self._error(item, "append", LOAD_ERR_YAML_VALIDATE,
                        f"'append' of {item.label} must be true or false")
            return False
        if override is not None:
            if append:
                self._error(item, "override", LOAD_ERR_YAML_VALIDATE,
                            f"{item.label} uses both 'append' and 'override'; use only 'override'")
                return False
            if not isinstance(override, dict) or not override:
                self._error(item, "override", LOAD_ERR_YAML_VALIDATE,
                            f"'override' of {item.label} must map keys to append or replace")
                return False
            for key, mode in override.items():
                if mode not in ("append", "replace"):
                    self._error(item, "override", LOAD_ERR_YAML_VALIDATE,
                                f"override of '{key}' in {item.label} must be 'append' or "
                                f"'replace', not {mode!r}")
                    return False
                allowed = _APPENDABLE if mode == "append" else _REPLACEABLE
                if key not in allowed[item.kind]:
                    self._error(item, "override", LOAD_ERR_YAML_VALIDATE,
                                f"'{key}' of a {item.kind} cannot be overridden with '{mode}' "
                                f"(allowed: {', '.join(sorted(allowed[item.kind]))})")
                    return False
                if key not in item.data:
                    self._error(item, "override", LOAD_ERR_YAML_VALIDATE,
                                f"{item.label} overrides '{key}' but does not give a new '{key}'")
                    return False
        return True

    def _modes(self, item: Item, keys: frozenset[str]) -> dict[str, str] | None:
        """Per key: "append" / "replace" for an amending item, or None for a definition."""
        if item.data.get("append", False):
            return {k: "append" for k in keys if k in item.data}
        override = item.data.get("override")
        if override is not None:
            return dict(override)
        return None

    # -- lists -----------------------------------------------------------------------------
    def _list_items(self, item: Item) -> list[str] | None:
        items = item.data.get("items")
        if items is None:
            items = []
        if not isinstance(items, list):
            self._error(item, "items", LOAD_ERR_YAML_VALIDATE,
                        f"'items' of {item.label} must be a YAML list")
            return None
        return [_as_text(v) for v in items]

    def _add_list(self, item: Item) -> None:
        if "items" not in item.data and not item.data.get("append") and "override" not in item.data:
            self._error(item, None, LOAD_ERR_YAML_VALIDATE, f"{item.label} has no 'items'")
            return
        items = self._list_items(item)
        if items is None:
            return
        modes = self._modes(item, _APPENDABLE["list"])
        existing = self.col.lists.get(item.name)
        if modes is None:
            self.col.lists[item.name] = ListDef(item.name, items, item)
            return
        if existing is None:
            self._error(item, None, LOAD_ERR_VALIDATE,
                        f"{item.label} appends or overrides, but no list '{item.name}' was "
                        "defined before")
            return
        if modes.get("items") == "append":
            existing.items.extend(items)
        elif modes.get("items") == "replace":
            existing.items = items

    # -- macros ----------------------------------------------------------------------------
    def _add_macro(self, item: Item) -> None:
        modes = self._modes(item, _APPENDABLE["macro"])
        cond = item.data.get("condition")
        if cond is None or isinstance(cond, list | dict):
            self._error(item, "condition" if cond is not None else None, LOAD_ERR_YAML_VALIDATE,
                        f"{item.label} needs a 'condition' string")
            return
        existing = self.col.macros.get(item.name)
        if modes is None:
            self.col.macros[item.name] = MacroDef(item.name, Text.of(cond, item, "condition"), item)
            return
        if existing is None:
            self._error(item, None, LOAD_ERR_VALIDATE,
                        f"{item.label} appends or overrides, but no macro '{item.name}' was "
                        "defined before")
            return
        if modes.get("condition") == "append":
            existing.condition.append(Text.of(cond, item, "condition"))
        elif modes.get("condition") == "replace":
            existing.condition = Text.of(cond, item, "condition")

    # -- rules -----------------------------------------------------------------------------
    def _exceptions(self, item: Item) -> list[ExceptionDef] | None:
        raw = item.data.get("exceptions")
        if raw is None:
            return []
        if not isinstance(raw, list):
            self._error(item, "exceptions", LOAD_ERR_YAML_VALIDATE,
                        f"'exceptions' of {item.label} must be a list")
            return None
        out = []
        for exc in raw:
            if not isinstance(exc, dict) or not isinstance(exc.get("name"), str):
                self._error(item, "exceptions", LOAD_ERR_YAML_VALIDATE,
                            f"each exception of {item.label} needs a 'name'")
                return None
            values = exc.get("values") or []
            if not isinstance(values, list):
                self._error(item, "exceptions", LOAD_ERR_YAML_VALIDATE,
                            f"'values' of exception '{exc['name']}' in {item.label} must be a list")
                return None
            out.append(ExceptionDef(exc["name"], exc.get("fields"), exc.get("comps"),
                                    list(values), item))
        return out

    def _add_rule(self, item: Item) -> None:
        data = item.data
        modes = self._modes(item, _APPENDABLE["rule"])
        existing = self.col.rules.get(item.name)
        exceptions = self._exceptions(item)
        if exceptions is None:
            return
        if "tags" in data and not (isinstance(data["tags"], list)):
            self._error(item, "tags", LOAD_ERR_YAML_VALIDATE,
                        f"'tags' of {item.label} must be a list")
            return
        for key in ("condition", "output", "desc"):
            if key in data and isinstance(data[key], list | dict):
                self._error(item, key, LOAD_ERR_YAML_VALIDATE,
                            f"'{key}' of {item.label} must be a string")
                return
        if "enabled" in data and not isinstance(data["enabled"], bool):
            self._error(item, "enabled", LOAD_ERR_YAML_VALIDATE,
                        f"'enabled' of {item.label} must be true or false")
            return

        # an item with only "rule" and "enabled" toggles an existing rule
        only_enable = modes is None and set(data) <= {"rule", "enabled"} and "enabled" in data
        if only_enable:
            if existing is None:
                self._error(item, None, LOAD_ERR_VALIDATE,
                            f"{item.label} sets 'enabled' but no rule '{item.name}' was defined "
                            "before")
                return
            existing.enabled = data["enabled"]
            return

        if modes is None:
            missing = [k for k in ("condition", "output", "desc", "priority") if k not in data]
            if missing:
                self._error(item, None, LOAD_ERR_YAML_VALIDATE,
                            f"{item.label} is missing {', '.join(repr(k) for k in missing)}")
                return
            rule = RuleDef(
                name=item.name, item=item,
                condition=Text.of(data["condition"], item, "condition"),
                output=Text.of(data["output"], item, "output"),
                desc=_as_text(data["desc"]),
                priority=data["priority"], priority_pos=item.pos_of("priority"),
                tags=[_as_text(t) for t in data.get("tags") or []],
                enabled=data.get("enabled", True),
                source=_as_text(data.get("source", "syscall")),
                exceptions=exceptions,
                warn_evttypes=bool(data.get("warn_evttypes", True)),
                skip_if_unknown_filter=bool(data.get("skip-if-unknown-filter", False)),
                extra={k: v for k, v in data.items() if k not in RULE_KEYS},
            )
            if existing is not None:
                first = existing.item.pos
                self._warn(item, item.pos, LOAD_DUPLICATE_RULE,
                           f"{item.label} is defined again (first at {first.file}:{first.line}); "
                           "this definition replaces it: use 'override:' or 'append: true' to "
                           "amend a rule, or another name for a new one")
            self.col.rules[item.name] = rule  # a redefinition keeps the first one's place
            return

        if existing is None:
            self._error(item, None, LOAD_ERR_VALIDATE,
                        f"{item.label} appends or overrides, but no rule '{item.name}' was "
                        "defined before")
            return
        for key, mode in modes.items():
            if key not in data:
                continue
            value = data[key]
            if key in ("condition", "output"):
                text = Text.of(value, item, key)
                if mode == "append":
                    getattr(existing, key).append(text)
                else:
                    setattr(existing, key, text)
            elif key == "desc":
                existing.desc = (existing.desc + " " + _as_text(value)) if mode == "append" \
                    else _as_text(value)
            elif key == "tags":
                tags = [_as_text(t) for t in value or []]
                existing.tags = existing.tags + tags if mode == "append" else tags
            elif key == "exceptions":
                if mode == "replace":
                    existing.exceptions = exceptions
                else:
                    _merge_exceptions(existing.exceptions, exceptions)
            elif key == "priority":
                existing.priority, existing.priority_pos = value, item.pos_of("priority")
            elif key == "enabled":
                existing.enabled = bool(value)
            elif key == "source":
                existing.source = _as_text(value)
            elif key == "warn_evttypes":
                existing.warn_evttypes = bool(value)
            elif key == "skip-if-unknown-filter":
                existing.skip_if_unknown_filter = bool(value)
        # an amending item may also carry "enabled" outside of override (Falco accepts it)
        if "enabled" in data and "enabled" not in modes:
            existing.enabled = data["enabled"]
        for key, value in data.items():
            if key not in RULE_KEYS:
                existing.extra[key] = value


def _merge_exceptions(into: list[ExceptionDef], new: list[ExceptionDef]) -> None:
    """Appending exceptions: values join an exception of the same name, others are added."""
    by_name = {e.name: e for e in into}
    for exc in new:
        old = by_name.get(exc.name)
        if old is not None and (exc.fields is None or exc.fields == old.fields):
            old.values.extend(exc.values)
        else:
            into.append(exc)
            by_name[exc.name] = exc


def collect(items_per_file: list[list[Item]]) -> tuple[Collection, list[Diagnostic]]:
    c = Collector()
    for items in items_per_file:
        for item in items:
            c.add(item)
    return c.col, c.diags
