"""Compile: collected rules -> CompiledRules in a RuleSet, with a Diagnostic for every problem.

For each enabled rule: validate priority and action, parse the condition, resolve macros,
lists and exceptions (sysward.rules.resolver), type-check, compile the output template,
specialise the tree per event type (sysward.rules.index) and generate one matcher per type
(sysward.rules.codegen).  A rule with a problem is left out and reported; the others load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sysward.alert import Priority
from sysward.rules import event_names
from sysward.rules.ast import And, Const, Node, Not, Or, to_text
from sysward.rules.codegen import CodeGen, CompileError, Failure, Registry
from sysward.rules.collector import Collection, RuleDef, Text
from sysward.rules.correlation import Correlation, Spec, SpecError, parse_spec
from sysward.rules.diagnostics import (
    LOAD_ERR_COMPILE_OUTPUT,
    LOAD_ERR_VALIDATE,
    LOAD_FALCO_INCOMPATIBLE,
    LOAD_NO_EVTTYPE,
    LOAD_UNKNOWN_EVTTYPE,
    Diagnostic,
    RulesError,
)
from sysward.rules.falco_compat import incompatibilities
from sysward.rules.index import OTHER, event_types, specialize
from sysward.rules.parser import ParseError, parse
from sysward.rules.resolver import Resolver, diagnostic_for, text_origin
from sysward.rules.ruleset import ACTIONS, CompiledRule, RuleSet
from sysward.rules.template import _OutputError, compile_template

SUPPORTED_SOURCES = frozenset({"syscall"})


@dataclass(slots=True)
class LoadResult:
    ruleset: RuleSet
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    rules_total: int = 0
    rules_loaded: int = 0
    rules_disabled: int = 0
    rules_skipped: list[tuple[str, str]] = field(default_factory=list)
    macros: int = 0
    lists: int = 0
    files: list[str] = field(default_factory=list)
    #: per loaded rule: the event types it can match (None: every type) and the types its
    #: condition names that sysward does not capture (they never fire)
    rule_types: dict[str, tuple[frozenset[str] | None, frozenset[str]]] = field(
        default_factory=dict)

    @property
    def uncaptured(self) -> dict[str, int]:
        """Event type named by some rule but not captured -> how many rules name it."""
        out: dict[str, int] = {}
        for _, missing in self.rule_types.values():
            for t in missing:
                out[t] = out.get(t, 0) + 1
        return dict(sorted(out.items()))

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        if not self.errors:
            return
        more = len(self.errors) - 1
        first = str(self.errors[0]).rstrip(".")
        if more:
            raise RulesError(f"{first}; and {more} more: 'sysward rules check' on the same "
                             "files lists every one.")
        raise RulesError(f"{first}.")

    def to_json(self) -> dict[str, Any]:
        return {
            "rules_total": self.rules_total,
            "rules_loaded": self.rules_loaded,
            "rules_disabled": self.rules_disabled,
            "rules_skipped": [{"rule": r, "reason": why} for r, why in self.rules_skipped],
            "macros": self.macros,
            "lists": self.lists,
            "event_types": sorted(self.ruleset.event_types),
            "uncaptured_event_types": self.uncaptured,
            "rules": [{"rule": name, "event_types": None if types is None else sorted(types),
                       "uncaptured_event_types": sorted(missing)}
                      for name, (types, missing) in self.rule_types.items()],
            "errors": [d.to_json() for d in self.errors],
            "warnings": [d.to_json() for d in self.warnings],
        }


class Compiler:
    def __init__(self, col: Collection, registry: Registry, min_priority: Priority | None,
                 diags: list[Diagnostic], files: list[str]) -> None:
        self.col = col
        self.gen = CodeGen(registry)
        self.registry = registry
        self.min_priority = min_priority
        self.diags = diags
        self.resolver = Resolver(col)
        self.result = LoadResult(RuleSet([]), files=files)

    def run(self) -> LoadResult:
        res = self.result
        self.resolver.parse_macros()
        compiled: list[CompiledRule] = []
        for rule in self.col.rules.values():
            res.rules_total += 1
            if not rule.enabled:
                res.rules_disabled += 1
                continue
            cr = self._rule(rule)
            if cr is not None:
                compiled.append(cr)
        self.diags.extend(self.resolver.diags)
        res.rules_loaded = len(compiled)
        res.ruleset = RuleSet(compiled, self.gen)
        res.macros = len(self.col.macros)
        res.lists = len(self.col.lists)
        res.errors = [d for d in self.diags if d.severity == "error"]
        res.warnings = [d for d in self.diags if d.severity == "warning"]
        return res

    def _error(self, rule: RuleDef, key: str, code: str, message: str, snippet: str = "") -> None:
        pos = rule.item.pos_of(key)
        self.diags.append(Diagnostic(code, "error", message, pos.file, pos.line, pos.col,
                                     snippet, f"rule '{rule.name}'"))

    def _rule(self, rule: RuleDef) -> CompiledRule | None:
        label = f"rule '{rule.name}'"
        if rule.source not in SUPPORTED_SOURCES:
            self.result.rules_skipped.append(
                (rule.name, f"source '{rule.source}' is not supported (sysward evaluates "
                            "syscall rules only)"))
            return None
        try:
            priority = Priority.parse(str(rule.priority))
        except ValueError as exc:
            self._error(rule, "priority", LOAD_ERR_VALIDATE, f"{exc} in {label}",
                        str(rule.priority))
            return None
        if self.min_priority is not None and priority > self.min_priority:
            self.result.rules_skipped.append(
                (rule.name, f"priority {priority.label} is below the minimum "
                            f"{self.min_priority.label}"))
            return None
        action = str(rule.extra.get("action", "alert")).lower()
        if action not in ACTIONS:
            self._error(rule, "action", LOAD_ERR_VALIDATE,
                        f"unknown action '{action}' in {label} (expected one of: "
                        f"{', '.join(ACTIONS)})", action)
            return None

        spec: Spec | None = None
        if "correlate" in rule.extra and action != "alert":
            self._error(rule, "correlate", LOAD_ERR_VALIDATE,
                        f"{label} has both 'correlate' and action '{action}': enforcement "
                        "acts on one event in the kernel, a correlation needs several; "
                        "drop one of them", "correlate")
            return None
        if "correlate" in rule.extra:
            try:
                spec = parse_spec(rule.extra["correlate"])
            except SpecError as exc:
                self._error(rule, "correlate", LOAD_ERR_VALIDATE, f"{exc} in {label}",
                            exc.key)
                return None

        origin = text_origin(rule.condition, label)
        step_trees: list[Node] = []
        try:
            tree: Node = parse(rule.condition.text, origin)
            tree = self.resolver.expand(tree)
            exc_tree = self.resolver.exceptions(rule)
            if exc_tree is not None:
                tree = And((tree, Not(exc_tree)), pos=tree.pos, origin=tree.origin)
            self.gen.check(tree)
            self._falco_warnings(tree, label)
            if spec is not None and spec.steps:
                # each step is its own condition and-ed with the rule's; the rule as a whole
                # (indexed, prefiltered, generated as usual) is any step
                for i, step in enumerate(spec.steps):
                    origin = text_origin(Text.of(step.condition, rule.item, "correlate"),
                                         f"step {i + 1} of the sequence of {label}")
                    st = self.resolver.expand(parse(step.condition, origin))
                    self.gen.check(st)
                    self._falco_warnings(st, label)
                    step_trees.append(And((st, tree), pos=st.pos, origin=st.origin))
                tree = Or(tuple(step_trees), pos=tree.pos, origin=tree.origin)
        except (ParseError, CompileError) as exc:
            if (rule.skip_if_unknown_filter and isinstance(exc, CompileError)
                    and exc.failure is Failure.UNKNOWN_FIELD):
                self.result.rules_skipped.append((rule.name, exc.message))
                return None
            self.diags.append(diagnostic_for(exc, origin, label, rule.item.pos))
            return None

        try:
            template = compile_template(rule.output.text.rstrip(), self.registry)
        except _OutputError as exc:
            pos = rule.output.locate(exc.offset)
            self.diags.append(Diagnostic(
                LOAD_ERR_COMPILE_OUTPUT, "error", f"{exc.message.rstrip('.')} in the output of "
                f"{label}", pos.file, pos.line, pos.col, "%" + exc.key, label))
            return None

        named, other = event_types(tree)
        trees = {t: specialize(tree, t) for t in sorted(named)}
        other_tree = specialize(tree, OTHER) if other else None
        try:
            by_type = {t: self.gen.function(s) for t, s in trees.items()}
            other_fn = self.gen.function(other_tree) if other_tree is not None else None
        except CompileError as exc:
            self.diags.append(diagnostic_for(exc, origin, label, rule.item.pos))
            return None
        if other and rule.warn_evttypes:
            pos = rule.item.pos_of("condition")
            self.diags.append(Diagnostic(
                LOAD_NO_EVTTYPE, "warning",
                f"{label} does not restrict evt.type, so it is evaluated for every event; "
                "add an evt.type condition", pos.file, pos.line, pos.col,
                rule.condition.text.strip().split("\n")[0][:40], label))
        correlation = None
        if spec is not None:
            correlation = self._correlation(rule, label, spec, step_trees, trees,
                                            other_tree is not None)
            if correlation is None:
                return None
        all_named = frozenset(t for t in _named(tree))
        self._check_type_names(rule, label, all_named)
        self.result.rule_types[rule.name] = (
            None if other else frozenset(named),
            frozenset(t for t in all_named if event_names.exists(t)
                      and not event_names.captured(t)))
        return CompiledRule(
            name=rule.name, desc=rule.desc, priority=priority, tags=list(rule.tags),
            source=rule.source, output=rule.output.text.strip(),
            event_types=None if other else frozenset(named), action=action,
            extra=dict(rule.extra), file=rule.item.pos.file, line=rule.item.pos.line,
            excluded_types=(all_named - named) if other else frozenset(),
            condition_text=to_text(tree),
            _by_type=by_type, _other=other_fn, _template=template,
            _trees=trees, _other_tree=other_tree, correlation=correlation,
        )

    def _correlation(self, rule: RuleDef, label: str, spec: Spec, step_trees: list[Node],
                     trees: dict[str, Node], other: bool) -> Correlation | None:
        """The state machine of a ``correlate`` rule: field getters and per-type steps."""
        getters: dict[str, Any] = {}
        for key, name in spec.fields():
            try:
                template = compile_template("%" + name, self.registry)
            except _OutputError as exc:
                self._error(rule, "correlate", LOAD_ERR_VALIDATE,
                            f"'{key}' of 'correlate' in {label}: {exc.message.rstrip('.')}",
                            name)
                return None
            getters[key] = _getter(template)
        corr = Correlation(spec, getters.get("by"), getters.get("distinct"))
        if spec.steps:
            n = len(spec.steps)
            corr.captures = tuple(getters.get(f"sequence[{i}].capture") for i in range(n))
            corr.equals = tuple(getters.get(f"sequence[{i}].equals") for i in range(n))
            types = list(trees) + ([OTHER] if other else [])
            for t in types:
                fns: list[Any] = []
                for st in step_trees:
                    s = specialize(st, t)
                    fns.append(None if isinstance(s, Const) and not s.value
                               else self.gen.function(s))
                corr.steps_by_type[t] = tuple(fns)
        return corr


    def _falco_warnings(self, tree: Node, label: str) -> None:
        for node, sentence in incompatibilities(tree, self.registry):
            pos = node.origin.position(node.pos)
            self.diags.append(Diagnostic(
                LOAD_FALCO_INCOMPATIBLE, "warning", f"{sentence} (in {label})", pos.file,
                pos.line, pos.col, node.origin.snippet(node.pos), label))

    def _check_type_names(self, rule: RuleDef, label: str, names: frozenset[str]) -> None:
        """A warning for each evt.type value that is no event at all (a misspelling)."""
        for name in sorted(names):
            if event_names.exists(name):
                continue
            close = event_names.suggestion(name)
            hint = f" (did you mean '{close}'?)" if close else ""
            pos = rule.item.pos_of("condition")
            self.diags.append(Diagnostic(
                LOAD_UNKNOWN_EVTTYPE, "warning",
                f"{label} compares evt.type with '{name}', which is no event type{hint}; "
                "that comparison never holds", pos.file, pos.line, pos.col, name, label))


def _getter(template: Any) -> Any:
    def get(event: Any) -> str:
        return str(template.render(event)[0])

    return get


def _named(tree: Node) -> frozenset[str]:
    from sysward.rules.index import named_types

    return named_types(tree)
