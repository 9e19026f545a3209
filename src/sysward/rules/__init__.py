"""Falco-compatible rules: read -> collect -> compile, indexed by event type.

``load_rules(paths)`` returns a ``LoadResult`` whose ``ruleset.match(event)`` gives the rules
that fire on an event, and ``alert_for(rule, event, hostname)`` builds the alert.  Field
definitions live in ``sysward.rules.fields``.
"""

from __future__ import annotations

from sysward.rules.diagnostics import Diagnostic, RulesError
from sysward.rules.loader import LoadResult, load_rules, load_rules_text
from sysward.rules.ruleset import CompiledRule, RuleSet, alert_for

__all__ = [
    "CompiledRule",
    "Diagnostic",
    "LoadResult",
    "RuleSet",
    "RulesError",
    "alert_for",
    "load_rules",
    "load_rules_text",
]
