"""Read: rules YAML -> items, each with its file, line and column (and those of every key).

PyYAML's *compose* step keeps a mark for every node; we keep those marks next to the plain
values so that any later error (a typo deep inside a folded ``condition: >``) can point at the
exact line and column.  The C-accelerated loader is used when PyYAML was built with libyaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from sysward.rules.diagnostics import (
    LOAD_ERR_YAML_PARSE,
    LOAD_ERR_YAML_VALIDATE,
    LOAD_UNKNOWN_ITEM,
    Diagnostic,
    Position,
    snippet_at,
)
from sysward.yaml_errors import yaml_error_position

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ITEM_KINDS = ("rule", "macro", "list", "required_engine_version", "required_plugin_versions")


class Source:
    """One file's text, split in lines, to turn marks and offsets into positions."""

    __slots__ = ("name", "text", "lines")

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.lines = text.split("\n")


@dataclass(slots=True)
class ValueLoc:
    """Where a scalar value sits in its file, so offsets into the value map back to the file."""

    source: Source
    line: int  # 0-based, of the node's start mark
    col: int  # 0-based
    end_line: int
    end_col: int

    @property
    def position(self) -> Position:
        return Position(self.source.name, self.line + 1, self.col + 1)

    def locate(self, value: str, offset: int) -> Position:
        """File position of ``value[offset]``.

        YAML may fold lines, strip indentation, or unescape quotes, so the value is not a
        substring of the file.  Its non-blank characters do appear in the same order in the
        raw text, though: walk both in step to find the raw character that ``offset`` is.
        """
        lines = self.source.lines
        ln, col = self.line, self.col
        # skip a block-scalar header (">", "|-", ...) or an opening quote
        first = lines[ln][col:col + 1] if ln < len(lines) else ""
        if first in (">", "|"):
            ln, col = ln + 1, 0
        elif first in ("'", '"'):
            col += 1
        target = min(max(offset, 0), max(len(value) - 1, 0))
        i = 0
        end = (self.end_line, self.end_col)
        while ln < len(lines) and (ln, col) <= end:
            line = lines[ln]
            while col < len(line):
                ch = line[col]
                if ch.isspace():
                    col += 1
                    continue
                while i < len(value) and value[i].isspace():
                    i += 1
                if i >= len(value):
                    return Position(self.source.name, ln + 1, col + 1)
                if ch == value[i]:
                    if i >= target:
                        return Position(self.source.name, ln + 1, col + 1)
                    i += 1
                col += 1
            ln, col = ln + 1, 0
        return self.position


@dataclass(slots=True)
class Item:
    """One top-level entry of a rules file."""

    kind: str  # one of ITEM_KINDS
    name: str  # the rule/macro/list name ("" for the version items)
    data: dict[str, Any]  # plain Python values of every key
    pos: Position  # where the item starts
    locs: dict[str, ValueLoc] = field(default_factory=dict)  # key -> where its value is
    key_pos: dict[str, Position] = field(default_factory=dict)  # key -> where the key is

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.name}'" if self.name else self.kind

    def pos_of(self, key: str) -> Position:
        loc = self.locs.get(key)
        return loc.position if loc is not None else self.key_pos.get(key, self.pos)


def _pos(source: Source, mark: Any) -> Position:
    return Position(source.name, mark.line + 1, mark.column + 1)


class _Constructor(yaml.constructor.SafeConstructor):
    """SafeConstructor that reads a bare ``=`` (YAML 1.1's "value" tag) as the string "=":
    exceptions write ``comps: [=, startswith]``."""


_Constructor.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:value", _Constructor.construct_yaml_str)


def _construct(node: yaml.Node) -> Any:
    return _Constructor().construct_document(node)


def read_text(text: str, name: str) -> tuple[list[Item], list[Diagnostic]]:
    """Parse one file's text into items; YAML and shape problems become diagnostics."""
    source = Source(name, text)
    diags: list[Diagnostic] = []
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        line, col, message = yaml_error_position(exc)
        snippet = source.lines[line - 1].strip() if 0 < line <= len(source.lines) else ""
        diags.append(Diagnostic(LOAD_ERR_YAML_PARSE, "error", f"invalid YAML: {message}",
                                name, line, col, snippet))
        return [], diags
    except yaml.YAMLError as exc:
        diags.append(Diagnostic(LOAD_ERR_YAML_PARSE, "error", f"invalid YAML: {exc}", name, 1, 1))
        return [], diags
    if root is None:
        return [], diags  # an empty file is fine
    if not isinstance(root, yaml.SequenceNode):
        p = _pos(source, root.start_mark)
        diags.append(Diagnostic(LOAD_ERR_YAML_VALIDATE, "error",
                                "a rules file must be a YAML list of rule, macro and list items",
                                name, p.line, p.col, snippet_at(text, 0)))
        return [], diags
    items: list[Item] = []
    for node in root.value:
        item, diag = _read_item(source, node)
        if diag is not None:
            diags.append(diag)
        if item is not None:
            items.append(item)
    return items, diags


def _read_item(source: Source, node: yaml.Node) -> tuple[Item | None, Diagnostic | None]:
    pos = _pos(source, node.start_mark)
    ln = node.start_mark.line
    line_text = source.lines[ln].strip() if ln < len(source.lines) else ""
    if not isinstance(node, yaml.MappingNode):
        return None, Diagnostic(LOAD_ERR_YAML_VALIDATE, "error",
                                "each item must be a mapping (rule:, macro:, list: ...)",
                                source.name, pos.line, pos.col, line_text)
    data: dict[str, Any] = {}
    locs: dict[str, ValueLoc] = {}
    key_pos: dict[str, Position] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            kp = _pos(source, key_node.start_mark)
            return None, Diagnostic(LOAD_ERR_YAML_VALIDATE, "error",
                                    "item keys must be plain names",
                                    source.name, kp.line, kp.col, line_text)
        key = str(key_node.value)
        try:
            data[key] = _construct(value_node)
        except yaml.YAMLError as exc:
            vp = _pos(source, value_node.start_mark)
            return None, Diagnostic(LOAD_ERR_YAML_VALIDATE, "error",
                                    f"bad value for '{key}': {exc}",
                                    source.name, vp.line, vp.col, line_text)
        key_pos[key] = _pos(source, key_node.start_mark)
        locs[key] = ValueLoc(source, value_node.start_mark.line, value_node.start_mark.column,
                             value_node.end_mark.line, value_node.end_mark.column)
    kind = next((k for k in ITEM_KINDS if k in data), None)
    if kind is None:
        return None, Diagnostic(LOAD_UNKNOWN_ITEM, "warning",
                                "unknown item (expected rule, macro, list, required_engine_version "
                                "or required_plugin_versions); ignored",
                                source.name, pos.line, pos.col, line_text)
    name = ""
    if kind in ("rule", "macro", "list"):
        raw = data[kind]
        if not isinstance(raw, str | int | float) or isinstance(raw, bool) or str(raw) == "":
            return None, Diagnostic(LOAD_ERR_YAML_VALIDATE, "error",
                                    f"{kind} name must be a non-empty string",
                                    source.name, pos.line, pos.col, line_text)
        name = str(raw)
    return Item(kind, name, data, pos, locs, key_pos), None
