"""Enforcement in the kernel: rules with ``action: kill`` or ``action: deny``.

``compile_rules`` decides which rules the kernel can enforce (docs/enforcement.md defines the
subset) and turns them into slots; ``Enforcer`` loads the enforcement unit
(bpf/enforce.bpf.c), fills its maps, attaches its hooks and reads back what it did.
"""

from __future__ import annotations

from sysward.enforce.compiler import Plan, Refusal, compile_rules
from sysward.enforce.enforcer import ActionReport, EnforceError, Enforcer, lsm_available

__all__ = [
    "ActionReport",
    "EnforceError",
    "Enforcer",
    "Plan",
    "Refusal",
    "compile_rules",
    "lsm_available",
]
