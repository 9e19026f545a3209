"""``sysward rules explain``: what the kernel tests for each rule and event type, what is left
to user space, and which rules defeat the kernel filter."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sysward.enforce.prefilter.compiler import STATE_TYPES, Approvers, compile_approvers


def warnings(approvers: Approvers) -> list[str]:
    """One sentence per rule that makes the kernel pass every event of a type."""
    out: list[str] = []
    for evt, tf in sorted(approvers.by_type.items()):
        if not tf.passes_all or evt in STATE_TYPES or not tf.reason.startswith("rule '"):
            continue
        rule = tf.reason.split("'")[1]
        left = ", ".join(tf.left.get(rule, [])[:3]) or "its condition"
        out.append(f"rule '{rule}' defeats the kernel filter for evt.type {evt}: every {evt} "
                   f"event reaches user space, because the kernel cannot test {left}; add a "
                   "test it can make (a path, a file name, proc.name, user.uid, open flags, "
                   "a socket address or port, "
                   "the result) to let it drop the others")
    for evt, tf in sorted(approvers.by_type.items()):
        if tf.passes_all and not tf.reason.startswith("rule '") and evt not in STATE_TYPES:
            out.append(f"evt.type {evt}: the kernel passes every event ({tf.reason})")
    return out


def explain(rules: Sequence[Any], types: Iterable[str]) -> dict[str, Any]:
    """Per event type: whether the kernel filters it, and per rule its kernel tests and the
    parts left to user space (a JSON-ready dict)."""
    from sysward.enforce.prefilter.discarders import compile_discarders

    types = sorted(set(types))
    ap = compile_approvers(rules, types)
    plan = compile_discarders(rules, types)
    out: dict[str, Any] = {"types": {}, "warnings": warnings(ap)}
    for evt, tf in sorted(ap.by_type.items()):
        per_rule: dict[str, Any] = {}
        for c in tf.clauses:
            entry = per_rule.setdefault(c.rule, {"kernel": [], "user_space": tf.left.get(c.rule,
                                                                                       [])})
            entry["kernel"].append(c.describe())
        for rule in tf.rules:
            per_rule.setdefault(rule, {"kernel": [], "user_space": tf.left.get(rule, [])})
        out["types"][evt] = {
            "filtered": not tf.passes_all,
            "why_not": tf.reason,
            "clauses": len(tf.clauses),
            "feature_bits": len(tf.features),
            "rules": per_rule,
            "discarders": plan.by_type[evt].may_match is not None,
            "why_no_discarders": plan.by_type[evt].reason,
        }
    return out


def _short(text: str, n: int = 100) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."


def render(report: dict[str, Any], verbose: bool = True) -> str:
    lines: list[str] = []
    for evt, t in report["types"].items():
        if t["filtered"]:
            lines.append(f"{evt}: filtered in the kernel ({t['clauses']} clauses, "
                         f"{t['feature_bits']} feature bits, {len(t['rules'])} rules)")
        else:
            lines.append(f"{evt}: every event passes: {t['why_not']}")
        if t.get("discarders"):
            lines.append("  discarders: learned at run time (paths that no rule of the type "
                         "can match are dropped in the kernel)")
        elif verbose and t.get("why_no_discarders") and evt not in STATE_TYPES:
            lines.append(f"  no discarders: {t['why_no_discarders']}")
        if not verbose:
            continue
        for rule, r in t["rules"].items():
            lines.append(f"  rule '{rule}'")
            for k in r["kernel"]:
                lines.append(f"    kernel: {_short(k, 160)}")
            for u in r["user_space"]:
                lines.append("    left to user space: " + _short(u))
    for w in report["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


__all__ = ["explain", "render", "warnings"]
