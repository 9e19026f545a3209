"""What code generation reports: ``CompileError`` with a typed ``failure``, and the ``Registry``
it resolves fields through."""

from __future__ import annotations

from enum import Enum
from typing import Any, Protocol

from sysward.rules.ast import Node
from sysward.rules.diagnostics import LOAD_ERR_COMPILE_CONDITION


class Failure(Enum):
    """Why a condition did not compile, for the callers that decide on it (the compiler skips
    a rule with ``skip-if-unknown-filter: true`` on UNKNOWN_FIELD, and only on that)."""

    UNKNOWN_FIELD = "unknown-field"  # the condition names a field the registry does not have
    INVALID = "invalid"  # anything else: wrong type, bad constant, bad operator ...


class CompileError(Exception):
    """A condition that parses but cannot be compiled (unknown field, wrong type ...)."""

    def __init__(self, message: str, node: Node | None = None,
                 code: str = LOAD_ERR_COMPILE_CONDITION,
                 failure: Failure = Failure.INVALID) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.code = code
        self.failure = failure


class Registry(Protocol):
    """What code generation needs of the field registry (sysward.rules.fields is one):
    ``resolve`` returns a bound field or raises ValueError, an UnknownFieldError
    (sysward.rules.fieldtypes) when the name is not a field at all."""

    def resolve(self, name: str, arg: str | None = None) -> Any: ...
