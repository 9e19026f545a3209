"""Drops reported while they happen, not only in the counters printed at exit.

Every stage that can lose an event counts it (kernel ring buffer, raw queue, decoder, each
output's queue).  ``DropWatch`` compares those totals between checks; when any grew, it makes
one report: a warning line on stderr naming the counts and what to tune, an internal alert
for the outputs (so a SIEM learns that coverage was lost, as Falco's "syscall event drop"
alert does), and a "dropping" detail for /healthz.  Reports are rate limited: the first at
once, then at most one per ``interval_s``, each covering everything dropped since the last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sysward.alert import Alert, Priority

#: Seconds between two reports while drops go on (the first report is immediate).
REPORT_INTERVAL_S = 10.0

#: The rule name of the internal alert (source "internal", never a user rule).
DROP_ALERT_RULE = "sysward internal: event drop"

# stage -> (what it means, what to tune)
_STAGES: dict[str, tuple[str, str]] = {
    "kernel": ("the kernel ring buffer was full",
               "raise --ringbuf-mb (kernel.ringbuf_mb)"),
    "queue": ("the rule worker fell behind (raw queue full)",
              "raise --queue-size (pipeline.queue_size), or filter noisy processes "
              "(filters.ignore_comms) and rules"),
    "decoder": ("records could not be decoded",
                "rebuild the BPF objects with this agent (make build)"),
    "outputs": ("outputs lost alerts (a full queue, or a sink that refused them)",
                "fix the sink named in the output warnings, or raise outputs.queue_size "
                "(outputs.http.queue_size, outputs.sqlite.queue_size)"),
}


@dataclass(slots=True)
class DropCounts:
    """Cumulative drops per stage, and of each output."""

    kernel: int = 0
    queue: int = 0
    decoder: int = 0
    outputs: dict[str, int] = field(default_factory=dict)
    events: int = 0  # events that reached the kernel's ring-buffer decision (for a share)

    def by_stage(self) -> dict[str, int]:
        return {"kernel": self.kernel, "queue": self.queue, "decoder": self.decoder,
                "outputs": sum(self.outputs.values())}


@dataclass(slots=True)
class DropReport:
    seconds: float  # the span the report covers
    stages: dict[str, int]  # stage -> drops in that span (only stages that dropped)
    outputs: dict[str, int]  # output -> drops in that span (only outputs that dropped)
    events: int  # events in the span

    @property
    def total(self) -> int:
        return sum(self.stages.values())

    def warning(self) -> str:
        parts = []
        for stage, n in self.stages.items():
            what, _ = _STAGES[stage]
            detail = ""
            if stage == "outputs":
                detail = " (" + ", ".join(f"{k} {v}" for k, v in self.outputs.items()) + ")"
            parts.append(f"{n} because {what}{detail}")
        tune = "; ".join(_STAGES[s][1] for s in self.stages)
        share = f" of {self.events} events" if self.events else ""
        return (f"sysward: warning: dropping: {self.total}{share} lost in the last "
                f"{self.seconds:.0f}s: {', '.join(parts)}; to stop it: {tune}.")

    def detail(self) -> str:
        return "dropping: " + ", ".join(f"{s} {n}" for s, n in self.stages.items()) + \
            f" in the last {self.seconds:.0f}s"

    def alert(self, hostname: str, now_ns: int | None = None) -> Alert:
        fields: dict[str, int | float] = {"n_drops": self.total, "n_events": self.events,
                                          "seconds": round(self.seconds, 1)}
        for stage in _STAGES:
            fields[f"n_drops_{stage}"] = self.stages.get(stage, 0)
        for name, n in self.outputs.items():
            fields[f"n_drops_output_{name}"] = n
        stages = ", ".join(f"{s} {n}" for s, n in self.stages.items())
        return Alert(
            time=time.time_ns() if now_ns is None else now_ns,
            rule=DROP_ALERT_RULE,
            priority=Priority.CRITICAL,
            output=(f"sysward internal: event drop. {self.total} events dropped in the last "
                    f"{self.seconds:.0f}s ({stages}); detection coverage was lost"),
            output_fields=fields,
            tags=["sysward", "internal"],
            hostname=hostname,
            source="internal",
        )


class DropWatch:
    """Turns cumulative drop counters into rate-limited reports."""

    def __init__(self, interval_s: float = REPORT_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._reported = DropCounts()  # the counts the last report (or the start) covered
        self._reported_at = time.monotonic()
        self._last_report_at: float | None = None
        self._last: DropReport | None = None
        self.reports = 0

    def check(self, now: DropCounts, at: float | None = None) -> DropReport | None:
        """A report when drops grew since the last one and the rate limit allows it."""
        at = time.monotonic() if at is None else at
        if self._last_report_at is not None and at - self._last_report_at < self.interval_s:
            return None
        old = self._reported.outputs
        if any(now.outputs.get(k, 0) < v for k, v in old.items()):
            # A reload built new outputs whose counters start at 0: count from there.
            self._reported.outputs = {k: 0 if now.outputs.get(k, 0) < v else v
                                      for k, v in old.items()}
        before = self._reported.by_stage()
        stages = {s: n - before[s] for s, n in now.by_stage().items() if n > before[s]}
        if not stages:
            return None
        outputs = {k: v - self._reported.outputs.get(k, 0) for k, v in now.outputs.items()
                   if v > self._reported.outputs.get(k, 0)}
        report = DropReport(at - self._reported_at, stages, outputs,
                            max(0, now.events - self._reported.events))
        self._reported = DropCounts(now.kernel, now.queue, now.decoder, dict(now.outputs),
                                    now.events)
        self._reported_at = self._last_report_at = at
        self._last = report
        self.reports += 1
        return report

    def dropping(self, at: float | None = None) -> str | None:
        """The /healthz detail while drops are recent (within two report intervals)."""
        at = time.monotonic() if at is None else at
        if self._last is None or self._last_report_at is None:
            return None
        if at - self._last_report_at > 2 * self.interval_s:
            return None
        return self._last.detail()
