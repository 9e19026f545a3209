"""Alert grouping: repeats of one rule in one process tree within a window become one alert
with a count, so one reverse shell or one start of a tracing tool is one alert, not twelve.

- The first alert of a group is never held back: it goes out at once (with ``group.id``).
- Repeats within ``window_s`` of the first (same rule, a process of the same tree: see
  sysward.events.tree) are *held*: the store keeps each one, marked with ``group.id`` and its
  ``group.seq``, but no notification goes out.
- When the window closes, a group that had repeats sends one summary alert: the rule's
  output of the first occurrence followed by ``[grouped: N alerts in Ws]``, with
  ``group.count``, ``group.first_time`` and ``group.last_time`` in its fields.
- Alerts of enforcing rules (a kill, a refused connection) are never grouped: each action is
  news.  At most ``max_groups`` groups are open; beyond that the oldest closes early
  (counted), so the state stays bounded.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from sysward.alert import Alert
from sysward.events import tree
from sysward.events.model import Event


@dataclass(slots=True)
class _Group:
    id: int
    first: Alert
    opened_ns: int  # event time of the first alert
    last_ns: int
    count: int = 1


@dataclass(slots=True)
class Grouper:
    window_s: float = 60.0
    max_groups: int = 4096
    held: int = 0  # repeats held back (stored, not notified)
    summaries: int = 0
    closed_early: int = 0  # groups closed before their window by the max_groups bound
    _groups: OrderedDict[tuple[str, tree.TreeKey], _Group] = field(default_factory=OrderedDict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: list[_Group] = field(default_factory=list)  # closed early, summary not sent

    @property
    def window_ns(self) -> int:
        return int(self.window_s * 1e9)

    @property
    def open_groups(self) -> int:
        return len(self._groups)

    def admit(self, alert: Alert, event: Event, enforcing: bool = False) -> bool:
        """Mark ``alert``; True when it is a repeat to hold back (store only)."""
        if enforcing:
            return False
        window = self.window_ns
        for k in tree.chain(event):
            g = self._groups.get((alert.rule, k))
            if g is None:
                continue
            if alert.time - g.opened_ns > window:
                break  # that group's window is over: this one starts a new group
            g.count += 1
            g.last_ns = max(g.last_ns, alert.time)
            alert.output_fields["group.id"] = g.id
            alert.output_fields["group.seq"] = g.count
            self.held += 1
            return True
        key = (alert.rule, tree.root(event))
        old = self._groups.pop(key, None)
        if old is not None and old.count > 1:
            self._pending.append(old)
        g = _Group(next(self._ids), alert, alert.time, alert.time)
        alert.output_fields["group.id"] = g.id
        self._groups[key] = g
        while len(self._groups) > self.max_groups:
            _, evicted = self._groups.popitem(last=False)
            self.closed_early += 1
            if evicted.count > 1:
                self._pending.append(evicted)
        return False

    def expired(self, now_ns: int) -> list[Alert]:
        """Summaries of the groups whose window ended by ``now_ns`` (and that had repeats)."""
        window = self.window_ns
        done = [k for k, g in self._groups.items() if now_ns - g.opened_ns > window]
        closed = self._pending + [self._groups.pop(k) for k in done]
        self._pending = []
        return [self._summary(g) for g in closed if g.count > 1]

    def flush(self) -> list[Alert]:
        """Summaries of every open group with repeats (shutdown)."""
        closed = self._pending + list(self._groups.values())
        self._groups.clear()
        self._pending = []
        return [self._summary(g) for g in closed if g.count > 1]

    def _summary(self, g: _Group) -> Alert:
        self.summaries += 1
        first = g.first
        span = (g.last_ns - g.opened_ns) / 1e9
        fields = dict(first.output_fields)
        fields.update({"group.id": g.id, "group.count": g.count,
                       "group.first_time": g.opened_ns, "group.last_time": g.last_ns})
        return Alert(time=g.last_ns, rule=first.rule, priority=first.priority,
                     output=f"{first.output} [grouped: {g.count} alerts in {span:.1f}s]",
                     output_fields=fields, tags=list(first.tags), hostname=first.hostname,
                     source=first.source)
