"""Compiled rules and the rule set the agent matches events against (the hot path)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, cast

from sysward.alert import Alert, Priority
from sysward.events.model import Event
from sysward.events.text import printable, printable_tree
from sysward.rules.ast import FieldRef, Node
from sysward.rules.template import Template

Predicate = Callable[[Event], Any]

ACTIONS = ("alert", "kill", "deny")


@dataclass(slots=True, eq=False)
class CompiledRule:
    name: str
    desc: str
    priority: Priority
    tags: list[str]
    source: str
    output: str
    #: the event types the rule can match; None when it can match types it does not name
    #: (then ``excluded_types`` lists the named types it cannot match)
    event_types: frozenset[str] | None
    action: str = "alert"
    extra: dict[str, Any] = field(default_factory=dict)
    file: str = ""
    line: int = 0
    excluded_types: frozenset[str] = frozenset()
    condition_text: str = ""  # the condition after macro/list/exception expansion
    _by_type: dict[str, Predicate] = field(default_factory=dict, repr=False)
    _other: Predicate | None = field(default=None, repr=False)
    _template: Template | None = field(default=None, repr=False)
    _trees: dict[str, Any] = field(default_factory=dict, repr=False)  # specialised conditions
    _other_tree: Any = field(default=None, repr=False)
    #: a ``correlate`` rule's state machine (sysward.rules.correlation); None for plain rules
    correlation: Any = field(default=None, repr=False)

    @property
    def conditions(self) -> Mapping[str, Node]:
        """The condition specialised for each event type it names (``evt.type`` folded away)."""
        return cast(Mapping[str, Node], self._trees)

    @property
    def unnamed_condition(self) -> Node | None:
        """The condition as it reads for the event types it does not name (None: it cannot
        match them)."""
        return cast("Node | None", self._other_tree)

    def condition_for(self, evt_type: str) -> Node | None:
        """The condition specialised for ``evt_type`` (None: the rule cannot match it)."""
        tree = self._trees.get(evt_type)
        if tree is not None:
            return cast(Node, tree)
        if evt_type in self.excluded_types or self.event_types is not None:
            return None
        return cast("Node | None", self._other_tree)

    def predicate_for(self, evt_type: str) -> Predicate | None:
        """The compiled condition specialised for ``evt_type`` (None: cannot match it)."""
        fn = self._by_type.get(evt_type)
        if fn is not None:
            return fn
        if evt_type in self.excluded_types or (self.event_types is not None):
            return None
        return self._other

    def matches(self, event: Event) -> bool:
        fn = self.predicate_for(event.type)
        return bool(fn is not None and fn(event))

    def render(self, event: Event) -> tuple[str, dict[str, Any]]:
        if self._template is None:
            return self.output, {}
        return self._template.render(event)


class RuleSet:
    """Rules indexed by event type: an event only meets the rules that can match its type.

    With the code generator of the load (``gen``), each event type gets one generated
    function that evaluates all its rules and extracts each field at most once per event.
    Should that function raise (a field extractor bug on an odd event), ``match`` falls back
    to evaluating rule by rule, skips the rules that fail and counts them in ``eval_errors``:
    one broken extractor must not blind every other rule.
    """

    __slots__ = ("rules", "event_types", "matches_unnamed_types", "eval_errors", "_by_type",
                 "_other", "_matchers", "_other_matcher", "correlations")

    def __init__(self, rules: list[CompiledRule], gen: Any = None) -> None:
        self.rules = rules
        self.eval_errors = 0
        #: the correlation rules' state machines (their matches are only candidates)
        self.correlations = [r.correlation for r in rules if r.correlation is not None]
        named: set[str] = set()
        for r in rules:
            named |= set(r._by_type)
            named |= r.excluded_types
        self._by_type: dict[str, tuple[tuple[CompiledRule, Predicate], ...]] = {}
        for t in sorted(named):
            self._by_type[t] = self._build(t)
        self._other = tuple((r, r._other) for r in rules
                            if r.event_types is None and r._other is not None)
        self.matches_unnamed_types = bool(self._other)
        types = {t for t, lst in self._by_type.items() if lst}
        if self.matches_unnamed_types:
            from sysward.rules.index import KNOWN_EVENT_TYPES

            excluded = frozenset.intersection(*(r.excluded_types for r, _ in self._other))
            types |= KNOWN_EVENT_TYPES - excluded
        #: every event type some loaded rule can match: what the agent attaches
        self.event_types: frozenset[str] = frozenset(types)
        self._matchers: dict[str, Callable[[Event], list[CompiledRule]]] = {}
        self._other_matcher: Callable[[Event], list[CompiledRule]] = self._slow_other
        if gen is not None:
            for t, entries in self._by_type.items():
                self._matchers[t] = gen.matcher([(r, r._trees.get(t, r._other_tree))
                                                 for r, _ in entries], t)
            self._other_matcher = gen.matcher([(r, r._other_tree) for r, _ in self._other])
        else:
            for t in self._by_type:
                self._matchers[t] = self._slow_for(t)

    def _build(self, evt_type: str) -> tuple[tuple[CompiledRule, Predicate], ...]:
        out = []
        for r in self.rules:
            fn = r.predicate_for(evt_type)
            if fn is not None:
                out.append((r, fn))
        return tuple(out)

    def _slow_for(self, evt_type: str) -> Callable[[Event], list[CompiledRule]]:
        entries = self._by_type[evt_type]
        return lambda event: [r for r, fn in entries if fn(event)]

    def _slow_other(self, event: Event) -> list[CompiledRule]:
        return [r for r, fn in self._other if fn(event)]

    def rules_for_type(self, evt_type: str) -> list[CompiledRule]:
        return [r for r, _ in self._by_type.get(evt_type, self._other)]

    def match(self, event: Event) -> list[CompiledRule]:
        """The rules that fire on ``event``, in load order."""
        try:
            fired = self._matchers.get(event.type, self._other_matcher)(event)
        except Exception:  # noqa: BLE001 - isolate the failing rule, see the class doc
            fired = self._match_carefully(event)
        if self.correlations and fired:
            fired = [r for r in fired if r.correlation is None or r.correlation.observe(event)]
        return fired

    def reset_correlations(self) -> None:
        """Forget every correlation rule's state (a fresh replay, a test case)."""
        for c in self.correlations:
            c.reset()

    def correlation_stats(self) -> dict[str, int]:
        """Keys held now, keys and sequences evicted by the bounds, firings."""
        return {"keys": sum(c.size for c in self.correlations),
                "evicted": sum(c.evictions for c in self.correlations),
                "fired": sum(c.fired for c in self.correlations)}

    def _match_carefully(self, event: Event) -> list[CompiledRule]:
        out = []
        for r, fn in self._by_type.get(event.type, self._other):
            try:
                if fn(event):
                    out.append(r)
            except Exception:  # noqa: BLE001
                self.eval_errors += 1
        return out

    def __len__(self) -> int:
        return len(self.rules)

    def field_args(self, name: str) -> frozenset[str | None]:
        """The arguments ``name`` is read with in the conditions and outputs of the loaded
        rules (None: without one, e.g. ``proc.env`` whole); empty when no rule reads it.

        What enrichment keeps can follow this: only the environment variables some rule
        reads are worth holding for every process.
        """
        found: set[str | None] = set()
        for r in self.rules:
            trees = [*r._trees.values(), r._other_tree]
            for tree in trees:
                if tree is not None:
                    _collect_field_args(tree, name, found)
            if r._template is not None:
                for key, bound in r._template.fields:
                    if key.split("[", 1)[0] == name:
                        found.add(None if bound.arg is None else str(bound.arg))
        return frozenset(found)


def _collect_field_args(node: Any, name: str, found: set[str | None]) -> None:
    if isinstance(node, FieldRef):
        if node.name == name:
            found.add(node.arg)
        return
    if isinstance(node, tuple | list):
        for item in node:
            _collect_field_args(item, name, found)
    elif isinstance(node, Node):
        for f in fields(node):
            if f.name not in ("pos", "origin"):
                _collect_field_args(getattr(node, f.name), name, found)


def alert_for(rule: CompiledRule, event: Event, hostname: str) -> Alert:
    """The alert for ``rule`` firing on ``event``: output rendered from the rule's template."""
    output, fields = rule.render(event)
    if rule.correlation is not None:
        summary = rule.correlation.summary()
        fields = {**fields, **summary}
        output = f"{output} {_describe(summary)}"
        output, fields = printable(output), printable_tree(fields)
    elif not output.isascii() or rule._template is None or \
            not rule._template.line_has_values:
        # alerts leave the process: bytes that are not UTF-8 become U+FFFD here, once (an
        # ASCII line whose template cuts no field holds every value's text: nothing to do)
        output, fields = printable(output), printable_tree(fields)
    return Alert(time=event.ts, rule=rule.name, priority=rule.priority, output=output,
                 output_fields=fields, tags=list(rule.tags), hostname=hostname,
                 source=rule.source)


def _describe(summary: Mapping[str, Any]) -> str:
    """The correlation behind an alert, appended to its text: what added up."""
    window = f"{summary.get('correlation.window_s', 0):g}s"
    if summary.get("correlation.kind") == "threshold":
        text = f"[correlation: {summary.get('correlation.count')} events within {window}"
        values = summary.get("correlation.values")
        if values:
            text += ": " + "; ".join(str(v) for v in values)
        return text + "]"
    text = f"[correlation: {summary.get('correlation.steps')} steps within {window}"
    if "correlation.captured" in summary:
        text += f" on {summary['correlation.captured']}"
    return text + "]"
