"""Load errors and warnings: typed codes, each pointing at file:line:col with the offending text.

A rule problem never raises while loading: it becomes a ``Diagnostic`` in the ``LoadResult``
so that one bad rule does not hide the others.  ``RulesError`` is raised only for paths that
cannot be read, and by ``LoadResult.raise_for_errors`` for callers that want all-or-nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sysward.errors import SyswardError

# Error codes (Falco's names where Falco has one, so that operators recognise them).
LOAD_ERR_FILE_READ = "LOAD_ERR_FILE_READ"
LOAD_ERR_YAML_PARSE = "LOAD_ERR_YAML_PARSE"
LOAD_ERR_YAML_VALIDATE = "LOAD_ERR_YAML_VALIDATE"
LOAD_ERR_COMPILE_CONDITION = "LOAD_ERR_COMPILE_CONDITION"
LOAD_ERR_COMPILE_OUTPUT = "LOAD_ERR_COMPILE_OUTPUT"
LOAD_ERR_VALIDATE = "LOAD_ERR_VALIDATE"
LOAD_ERR_EXCEPTION = "LOAD_ERR_EXCEPTION"

# Warning codes.
LOAD_UNKNOWN_SOURCE = "LOAD_UNKNOWN_SOURCE"
LOAD_UNKNOWN_ITEM = "LOAD_UNKNOWN_ITEM"
LOAD_UNKNOWN_KEY = "LOAD_UNKNOWN_KEY"
LOAD_DUPLICATE_RULE = "LOAD_DUPLICATE_RULE"
LOAD_UNUSED_MACRO = "LOAD_UNUSED_MACRO"
LOAD_UNUSED_LIST = "LOAD_UNUSED_LIST"
LOAD_NO_EVTTYPE = "LOAD_NO_EVTTYPE"
LOAD_UNKNOWN_EVTTYPE = "LOAD_UNKNOWN_EVTTYPE"
LOAD_FALCO_INCOMPATIBLE = "LOAD_FALCO_INCOMPATIBLE"
LOAD_DEPRECATED_ITEM = "LOAD_DEPRECATED_ITEM"
LOAD_APPEND_NO_VALUES = "LOAD_APPEND_NO_VALUES"

Severity = Literal["error", "warning"]


@dataclass(slots=True, frozen=True)
class Position:
    """Where something is in a rules file: 1-based line and column."""

    file: str
    line: int
    col: int

    def shifted(self, text: str, offset: int) -> Position:
        """The position of ``text[offset]`` when ``text`` starts at this position.

        Used to point into a condition string: its first character is at ``self``.
        Block scalars (``condition: >``) are folded by YAML, so a position inside them is the
        line where the scalar starts plus the newlines seen in the folded text: close enough
        to find the text, and exact for the common one-line conditions.
        """
        before = text[:offset]
        nl = before.count("\n")
        if nl == 0:
            return Position(self.file, self.line, self.col + offset)
        return Position(self.file, self.line + nl, offset - before.rfind("\n"))


@dataclass(slots=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    file: str
    line: int
    col: int
    snippet: str = ""
    item: str | None = None  # "rule 'X'", "macro 'y'", "list 'z'" when known

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.severity} {self.code}: {self.message}"
        if self.snippet and f"'{self.snippet}'" not in self.message:
            text += f" (near '{self.snippet}')"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "snippet": self.snippet,
            "item": self.item,
        }


def snippet_at(text: str, offset: int, width: int = 40) -> str:
    """The offending text: from ``offset`` to the end of its line, at most ``width`` chars."""
    rest = text[offset:].split("\n", 1)[0].strip()
    if len(rest) > width:
        rest = rest[:width].rstrip() + "..."
    return rest


class RulesError(SyswardError):
    """Rule files that cannot be read, or (raise_for_errors) that failed to load."""
