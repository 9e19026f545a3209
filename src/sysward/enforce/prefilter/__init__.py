"""The kernel prefilter: the loaded rules compiled into approvers the sensor evaluates before
it builds a record, so that only events some rule could match leave the kernel.

``compile_approvers`` (compiler) -> ``build_tables`` (tables) -> ``fill`` into the sensor's
maps; ``decide`` (model) is the same decision in Python, for the proofs and for explain.
docs/architecture.md ("The kernel decides first") describes the design.
"""

from __future__ import annotations

from sysward.enforce.prefilter.compiler import (
    STATE_TYPES,
    Approvers,
    TypeFilter,
    compile_approvers,
)
from sysward.enforce.prefilter.model import Facts, decide
from sysward.enforce.prefilter.tables import Tables, build_tables, fill

__all__ = ["Approvers", "Facts", "STATE_TYPES", "Tables", "TypeFilter", "build_tables",
           "compile_approvers", "decide", "fill"]
