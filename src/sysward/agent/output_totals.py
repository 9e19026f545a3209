"""Alert and output counters that outlive the dispatchers a reload replaces.

A reload that changes the outputs (or the priority filter, or the rate limit) builds a new
``Dispatcher``; it keeps the outputs whose own settings did not change, and the replaced
ones drain and close on their own.  These are Prometheus counters and must never go
backwards, so what /metrics, the stats line and the exit summary show is the sum over every
dispatcher the agent has had and over every output (each counted once, however many
dispatchers shared it): the closed ones folded into one ``OutputTotals``, plus the live
ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sysward.outputs import Dispatcher, Output

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

    def add_dispatcher(self, dispatcher: Dispatcher) -> None:
        """Add the dispatcher's own counters (alerts, filtered, held back), not its outputs'."""
        s = dispatcher.stats()
        self.alerts += s["alerts"]
        self.filtered += s["filtered"]
        self.suppressed += s["suppressed"]
        self.grouped += s["grouped"]
        for key, n in list(dispatcher.alerts_by_rule.items()):
            self.alerts_by_rule[key] = self.alerts_by_rule.get(key, 0) + n
        for rule, n in s["suppressed_by_rule"].items():
            self.suppressed_by_rule[rule] = self.suppressed_by_rule.get(rule, 0) + n

    def add_output(self, output: Output, *, gauges: bool = True) -> None:
        """Add one output's counters (``gauges=False``: not its queue depth, for an output
        that is closed and is carried over)."""
        mine = self.outputs.setdefault(output.name, {})
        for what, n in output.stats().items():
            if gauges or what not in GAUGES:
                mine[what] = mine.get(what, 0) + n

    @classmethod
    def of(cls, dispatcher: Dispatcher) -> OutputTotals:
        """One dispatcher and its outputs."""
        out = cls()
        out.add_dispatcher(dispatcher)
        for output in dispatcher.all_outputs:
            out.add_output(output)
        return out

    def add(self, other: OutputTotals) -> None:
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
