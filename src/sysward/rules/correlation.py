"""Correlation rules: sysward's stateful extension of the Falco rule syntax (``correlate:``).

A rule with a ``correlate`` key still has a Falco condition; it fires only when the events
that match it add up (docs/rules-guide.md, "Correlation rules"):

- **threshold**: ``threshold: N`` events matching the condition, from one key (the process
  tree by default, or a field such as ``proc.sid``, ``container.id``, ``user.uid``), within
  ``window`` seconds; with ``distinct: FIELD`` only events with N different values count
  (ten recon commands, not one command ten times).
- **sequence**: ordered steps, each a condition of its own (and-ed with the rule's
  ``condition``), in one key within ``window``; a step may ``capture`` a field and a later
  one require that its own field ``equals`` the captured value (a file written in /tmp,
  then *that* file executed).

State is bounded: at most ``max_keys`` keys per rule (the least recently used key goes first)
and ``MAX_PENDING`` open sequences per key, both counted as evictions.  Event time (not
wall-clock time) drives the windows, so ``sysward replay`` of a capture decides exactly as
the live agent did.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sysward.events import tree
from sysward.events.model import Event

#: the keys a ``correlate`` mapping may hold
SPEC_KEYS = frozenset({"window", "by", "max_keys", "threshold", "distinct", "sequence"})
STEP_KEYS = frozenset({"condition", "capture", "equals"})
TREE = "tree"
DEFAULT_WINDOW_S = 60.0
DEFAULT_MAX_KEYS = 1024
MAX_WINDOW_S = 24 * 3600.0
MAX_PENDING = 16  # open sequences per key
MAX_VALUES_SHOWN = 16  # distinct values listed in an alert

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Getter = Callable[[Event], str]
Predicate = Callable[[Event], Any]


class SpecError(ValueError):
    """A ``correlate`` mapping that cannot work; the message names the key and the fix."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class StepSpec:
    condition: str
    capture: str | None = None
    equals: str | None = None


@dataclass(frozen=True, slots=True)
class Spec:
    """A validated ``correlate`` mapping (fields not yet compiled)."""

    window_s: float
    by: str
    max_keys: int
    threshold: int = 0
    distinct: str | None = None
    steps: tuple[StepSpec, ...] = ()

    @property
    def kind(self) -> str:
        return "sequence" if self.steps else "threshold"

    def fields(self) -> list[tuple[str, str]]:
        """(key, field name) of every field the spec reads, for compilation."""
        out = [] if self.by == TREE else [("by", self.by)]
        if self.distinct:
            out.append(("distinct", self.distinct))
        for i, s in enumerate(self.steps):
            if s.capture:
                out.append((f"sequence[{i}].capture", s.capture))
            if s.equals:
                out.append((f"sequence[{i}].equals", s.equals))
        return out


def parse_duration(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise SpecError(key, f"'{key}' must be a duration such as 60, 90s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if m is None:
            raise SpecError(key, f"'{key}' must be a duration such as 60, 90s, 5m or 1h, "
                                 f"not {value!r}")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not 0 < seconds <= MAX_WINDOW_S:
        raise SpecError(key, f"'{key}' must be more than 0 and at most 24h, not {value!r}")
    return seconds


def _field_name(value: Any, key: str) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    if not text or not re.fullmatch(r"[A-Za-z_][\w.]*(\[[^\]]+\])?", text):
        raise SpecError(key, f"'{key}' must name one field, such as proc.name, not {value!r}")
    return text


def parse_spec(raw: Any) -> Spec:
    """Validate a rule's ``correlate`` value; SpecError says what is wrong and how to fix it."""
    if not isinstance(raw, dict):
        raise SpecError("correlate", "'correlate' must be a mapping with 'threshold' or "
                                     "'sequence' (and optionally window, by, distinct)")
    unknown = sorted(set(map(str, raw)) - SPEC_KEYS)
    if unknown:
        raise SpecError("correlate", f"unknown key '{unknown[0]}' in 'correlate' (expected "
                                     f"{', '.join(sorted(SPEC_KEYS))})")
    has_t, has_s = "threshold" in raw, "sequence" in raw
    if has_t == has_s:
        raise SpecError("correlate", "'correlate' needs exactly one of 'threshold' (N matching "
                                     "events) or 'sequence' (ordered steps)")
    window = parse_duration(raw.get("window", DEFAULT_WINDOW_S), "window")
    by = raw.get("by", TREE)
    by = TREE if by == TREE else _field_name(by, "by")
    max_keys = raw.get("max_keys", DEFAULT_MAX_KEYS)
    if isinstance(max_keys, bool) or not isinstance(max_keys, int) or not 1 <= max_keys <= 1 << 20:
        raise SpecError("max_keys", f"'max_keys' must be a whole number from 1 to 1048576, "
                                    f"not {max_keys!r}")
    if has_t:
        n = raw["threshold"]
        if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= 10_000:
            raise SpecError("threshold", f"'threshold' must be a whole number from 2 to 10000, "
                                         f"not {n!r} (one event is what a plain rule is for)")
        distinct = raw.get("distinct")
        return Spec(window, by, max_keys, threshold=n,
                    distinct=None if distinct is None else _field_name(distinct, "distinct"))
    if "distinct" in raw:
        raise SpecError("distinct", "'distinct' belongs to threshold rules; a sequence "
                                    "binds values with 'capture' and 'equals'")
    steps_raw = raw["sequence"]
    if not isinstance(steps_raw, list) or not 2 <= len(steps_raw) <= 8:
        raise SpecError("sequence", "'sequence' must be a list of 2 to 8 steps, each a mapping "
                                    "with a 'condition'")
    steps: list[StepSpec] = []
    for i, s in enumerate(steps_raw):
        key = f"sequence[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("condition"), str):
            raise SpecError("sequence", f"step {i + 1} of 'sequence' must be a mapping with a "
                                        "'condition' string")
        bad = sorted(set(map(str, s)) - STEP_KEYS)
        if bad:
            raise SpecError("sequence", f"unknown key '{bad[0]}' in step {i + 1} of "
                                        f"'sequence' (expected condition, capture, equals)")
        equals = s.get("equals")
        if equals is not None and (i == 0 or steps[i - 1].capture is None):
            raise SpecError("sequence", f"step {i + 1} of 'sequence' has 'equals' but the step "
                                        "before it captures nothing; add 'capture' there")
        steps.append(StepSpec(
            s["condition"],
            None if s.get("capture") is None else _field_name(s["capture"], f"{key}.capture"),
            None if equals is None else _field_name(equals, f"{key}.equals")))
    return Spec(window, by, max_keys, steps=tuple(steps))


@dataclass(slots=True)
class _Pending:
    step: int  # the last step reached
    captured: str | None
    started: int  # ns
    root: tree.TreeKey | None


@dataclass(slots=True)
class Correlation:
    """The compiled state machine of one correlation rule (not thread-safe: the rule stage
    is one thread, as is replay)."""

    spec: Spec
    by: Getter | None  # None: process tree
    distinct: Getter | None = None
    #: sequence: per event type, one predicate per step (None: the step cannot match it)
    steps_by_type: dict[str, tuple[Predicate | None, ...]] = field(default_factory=dict)
    captures: tuple[Getter | None, ...] = ()
    equals: tuple[Getter | None, ...] = ()
    evictions: int = 0
    fired: int = 0
    _state: OrderedDict[Any, Any] = field(default_factory=OrderedDict)
    _last: dict[str, Any] = field(default_factory=dict)

    @property
    def window_ns(self) -> int:
        return int(self.spec.window_s * 1e9)

    @property
    def size(self) -> int:
        """Keys held now."""
        return len(self._state)

    def reset(self) -> None:
        self._state.clear()
        self._last = {}

    def summary(self) -> dict[str, Any]:
        """Fields describing the last firing, added to its alert's output_fields."""
        return dict(self._last)

    # -- keys ----------------------------------------------------------------------------
    def _find_key(self, event: Event, create: bool) -> Any:
        if self.by is not None:
            key: Any = self.by(event)
            if key in self._state:
                self._state.move_to_end(key)
                return key
            return key if create else None
        for k in tree.chain(event):
            if k in self._state:
                self._state.move_to_end(k)
                return k
        return tree.root(event) if create else None

    def _put(self, key: Any, value: Any) -> None:
        self._state[key] = value
        self._state.move_to_end(key)
        while len(self._state) > self.spec.max_keys:
            self._state.popitem(last=False)
            self.evictions += 1

    # -- observe -------------------------------------------------------------------------
    def observe(self, event: Event) -> bool:
        """Called for each event the rule's (combined) condition matched: True = fire."""
        if self.spec.steps:
            return self._sequence(event)
        return self._threshold(event)

    def _threshold(self, event: Event) -> bool:
        key = self._find_key(event, create=True)
        seen: deque[tuple[int, str]] | None = self._state.get(key)
        if seen is None:
            seen = deque()
            self._put(key, seen)
        horizon = event.ts - self.window_ns
        while seen and seen[0][0] < horizon:
            seen.popleft()
        value = self.distinct(event) if self.distinct is not None else str(event.num)
        if self.distinct is not None:
            for i, (_, v) in enumerate(seen):
                if v == value:
                    del seen[i]
                    break
        seen.append((event.ts, value))
        if len(seen) < self.spec.threshold:
            return False
        values = [v for _, v in seen]
        self._last = {"correlation.kind": "threshold", "correlation.count": len(values),
                      "correlation.window_s": self.spec.window_s,
                      "correlation.first_ts": seen[0][0]}
        if self.distinct is not None:
            self._last["correlation.values"] = values[:MAX_VALUES_SHOWN]
        del self._state[key]  # the next burst counts from zero
        self.fired += 1
        return True

    def _sequence(self, event: Event) -> bool:
        preds = self.steps_by_type.get(event.type)
        if preds is None:
            return False
        last = len(self.spec.steps) - 1
        fired = False
        window = self.window_ns
        for i in range(last, -1, -1):
            fn = preds[i]
            if fn is None or not fn(event):
                continue
            cap = self.captures[i]
            captured = cap(event) if cap is not None else None
            if i == 0:
                key = self._find_key(event, create=True)
                pending: list[_Pending] | None = self._state.get(key)
                if pending is None:
                    pending = []
                    self._put(key, pending)
                pending.append(_Pending(0, captured, event.ts, key if self.by is None else None))
                if len(pending) > MAX_PENDING:
                    del pending[0]
                    self.evictions += 1
                continue
            key = self._find_key(event, create=False)
            pending = self._state.get(key) if key is not None else None
            if not pending:
                continue
            eq = self.equals[i]
            want = eq(event) if eq is not None else None
            for inst in reversed(pending):
                if inst.step != i - 1 or event.ts - inst.started > window:
                    continue
                if want is not None and inst.captured != want:
                    continue
                if i == last:
                    pending.remove(inst)
                    self._last = {"correlation.kind": "sequence",
                                  "correlation.steps": len(self.spec.steps),
                                  "correlation.window_s": self.spec.window_s,
                                  "correlation.first_ts": inst.started}
                    if inst.captured is not None:
                        self._last["correlation.captured"] = inst.captured
                    fired = True
                    self.fired += 1
                else:
                    inst.step = i
                    inst.captured = captured if cap is not None else inst.captured
                break
            # expired instances go as they are met
            pending[:] = [p for p in pending if event.ts - p.started <= window]
        return fired
