"""Where the agent's alerts are read back, and how they are attributed to bench actions.

Detections are counted from the agent's real output: its sqlite store (``*.db``) or a JSON
lines file (``-o file:PATH``).  An alert counts for an action when its rule is the action's
sysward rule and it names a process the action ran (its pid) or carries the run marker.
Actions sharing a rule (three read /etc/shadow) are counted as one group.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sysward.bench.actions import Action
from sysward.errors import SyswardError
from sysward.outputs import AlertStore


@dataclass(slots=True)
class SeenAlert:
    rule: str
    pid: int
    output: str
    time_ns: int


class AlertFeed:
    """New alerts since the last call, from a sqlite store or a JSON lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_jsonl = path.suffix in (".json", ".jsonl", ".ndjson")
        self._store: AlertStore | None = None
        self._cursor = 0
        if not self.is_jsonl:
            self._store = AlertStore(path)
            self._cursor = self._store.last_id()
        elif path.exists():
            self._cursor = path.stat().st_size

    def new(self) -> list[SeenAlert]:
        if self._store is not None:
            self._cursor, rows = self._store.follow_after(self._cursor)
            return [SeenAlert(r.alert.rule, _pid(r.alert.output_fields), r.alert.output,
                              int(r.alert.time)) for r in rows]
        return self._new_lines()

    def _new_lines(self) -> list[SeenAlert]:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self._cursor:  # rotated
                    self._cursor = 0
                f.seek(self._cursor)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next call
        self._cursor += end
        out = []
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                a = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            out.append(SeenAlert(a.get("rule", ""), _pid(a.get("output_fields") or {}),
                                 a.get("output", ""), _iso_ns(a.get("time"))))
        return out

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def _iso_ns(text: object) -> int:
    """Nanoseconds since the epoch of a Falco-style time (``...T00:12:07.651998013Z``)."""
    if not isinstance(text, str) or "T" not in text:
        return 0
    head, _, frac = text.rstrip("Z").partition(".")
    try:
        secs = datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0
    digits = (frac + "000000000")[:9] if frac.isdigit() else "0"
    return int(secs) * 1_000_000_000 + int(digits)


def _pid(fields: dict[str, Any]) -> int:
    try:
        return int(fields.get("proc.pid") or 0)
    except (TypeError, ValueError):
        return 0


@dataclass
class Attribution:
    """Expected and detected counts of one round."""

    expected: Counter[str] = field(default_factory=Counter)  # action -> runs
    detected: Counter[str] = field(default_factory=Counter)  # action -> alerts attributed
    group_of: dict[str, str] = field(default_factory=dict)  # action -> rule
    shared: set[str] = field(default_factory=set)  # rules of more than one action

    @property
    def total_expected(self) -> int:
        return sum(self.expected.values())

    @property
    def total_detected(self) -> int:
        return sum(min(self.detected[a], n) for a, n in self.expected.items())

    @property
    def lost(self) -> int:
        return self.total_expected - self.total_detected

    @property
    def lost_pct(self) -> float:
        return 100.0 * self.lost / self.total_expected if self.total_expected else 0.0


class Matcher:
    """Counts alerts per rule that belong to the round (by pid or marker)."""

    def __init__(self, actions: Iterable[Action], marker: str, since_ns: int = 0) -> None:
        self.marker = marker
        self.since_ns = since_ns  # alerts of events before the round (worker start-up) skip
        self.by_rule: dict[str, list[Action]] = defaultdict(list)
        for a in actions:
            if a.sysward_rule is not None:
                self.by_rule[a.sysward_rule].append(a)
        self.pids: dict[str, set[int]] = defaultdict(set)
        self.per_rule: Counter[str] = Counter()

    def add_pids(self, pids: dict[str, list[int]]) -> None:
        for name, ps in pids.items():
            self.pids[name].update(ps)

    def feed(self, alerts: Iterable[SeenAlert]) -> None:
        for al in alerts:
            actions = self.by_rule.get(al.rule)
            if not actions or (al.time_ns and al.time_ns < self.since_ns):
                continue
            if self.marker in al.output or any(al.pid in self.pids[a.name] for a in actions):
                self.per_rule[al.rule] += 1

    def attribute(self, expected: Counter[str]) -> Attribution:
        """Spread each rule's detections over its actions in order, each up to its runs."""
        att = Attribution()
        for rule, actions in self.by_rule.items():
            if len(actions) > 1:
                att.shared.add(rule)
            left = self.per_rule[rule]
            for a in actions:
                n = expected.get(a.name, 0)
                att.expected[a.name] = n
                att.group_of[a.name] = rule
                take = min(left, n)
                att.detected[a.name] = take
                left -= take
            if left > 0 and actions:  # more alerts than runs: shown on the last action
                att.detected[actions[-1].name] += left
        return att


def open_feed(path: Path) -> AlertFeed:
    if not path.exists() and not path.suffix.startswith(".json"):
        raise SyswardError(f"no alert output at {path}; pass the agent's sqlite store or "
                           "JSON lines file.")
    return AlertFeed(path)
