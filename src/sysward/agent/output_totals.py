"""Alert and output counters that outlive the dispatchers a reload replaces.

A reload that changes the outputs (or the priority filter, or the rate limit) builds a new
``Dispatcher``; the old one drains and closes on its own.  Their counters are Prometheus
counters and must never go backwards, so what /metrics, the stats line and the exit
summary show is the sum over every dispatcher the agent has had: the closed ones folded into
one ``OutputTotals``, plus the ones still running (the current one, and any still draining
after a reload).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sysward.outputs import Dispatcher

#: Per-output figures that describe the present (a queue's depth), not a running count:
#: summed over live dispatchers, never carried over once a dispatcher is closed.
GAUGES = frozenset({"queued"})


@dataclass(slots=True)
class OutputTotals:
    alerts: int = 0
    filtered: int = 0
    suppressed: int = 0
    grouped: int = 0
    alerts_by_rule: dict[tuple[str, str], int] = field(default_factory=dict)
    suppressed_by_rule: dict[str, int] = field(default_factory=dict)
    #: output name -> its counters (``sent``, ``failed``, ``dropped``, ...)
    outputs: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, dispatcher: Dispatcher) -> OutputTotals:
        s = dispatcher.stats()
        return cls(alerts=s["alerts"], filtered=s["filtered"], suppressed=s["suppressed"],
                   grouped=s["grouped"], alerts_by_rule=dict(dispatcher.alerts_by_rule),
                   suppressed_by_rule=dict(s["suppressed_by_rule"]),
                   outputs={name: dict(o) for name, o in s["outputs"].items()})

    def add(self, other: OutputTotals, *, gauges: bool = True) -> None:
        """Add ``other`` in place (``gauges=False``: its queue depths are left out)."""
        self.alerts += other.alerts
        self.filtered += other.filtered
        self.suppressed += other.suppressed
        self.grouped += other.grouped
        for key, n in other.alerts_by_rule.items():
            self.alerts_by_rule[key] = self.alerts_by_rule.get(key, 0) + n
        for rule, n in other.suppressed_by_rule.items():
            self.suppressed_by_rule[rule] = self.suppressed_by_rule.get(rule, 0) + n
        for name, counters in other.outputs.items():
            mine = self.outputs.setdefault(name, {})
            for what, n in counters.items():
                if gauges or what not in GAUGES:
                    mine[what] = mine.get(what, 0) + n

    def copy(self) -> OutputTotals:
        out = OutputTotals()
        out.add(self)
        return out

    def summary(self) -> str:
        """One line for the final counters the agent prints at exit."""
        parts = [f"alerts={self.alerts}", f"suppressed={self.suppressed}",
                 f"grouped={self.grouped}"]
        for name, s in self.outputs.items():
            parts.append(f"{name}: sent={s.get('sent', 0)} failed={s.get('failed', 0)} "
                         f"dropped={s.get('dropped', 0)}")
        return " ".join(parts)
