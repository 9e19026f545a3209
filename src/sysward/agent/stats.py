"""What the agent tells about itself: Prometheus samples of each stage, the periodic stats
line and the final counters printed at exit.

Pure functions over the stages' own counters (plain ints kept on the hot path), so the
telemetry thread and the exit path read the same numbers the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sysward.agent.output_totals import OutputTotals
from sysward.agent.sensors import TypeCounters
from sysward.enforce.prefilter.discarders import Discarders
from sysward.metrics import KERNEL_COUNTERS, OUTPUT_COUNTERS, Sample, metric


@dataclass(slots=True)
class Totals:
    """What the stats line compares between two moments."""

    events: int = 0  # reached the ring-buffer decision in the kernel (submitted + lost)
    drops: int = 0  # lost anywhere: ring buffer full, raw queue full, undecodable, shutdown
    rejected: int = 0  # dropped by the kernel prefilter: no loaded rule could match them
    discarded: int = 0  # of rejected: by a learned discarder

    def minus(self, other: Totals) -> Totals:
        return Totals(self.events - other.events, self.drops - other.drops,
                      self.rejected - other.rejected, self.discarded - other.discarded)


def kernel_totals(kernel: Mapping[str, TypeCounters], user_drops: int) -> Totals:
    lost = sum(c.lost for c in kernel.values())
    events = sum(c.submitted for c in kernel.values()) + lost
    return Totals(events, lost + user_drops, sum(c.rejected for c in kernel.values()),
                  sum(c.discarded for c in kernel.values()))


def kernel_samples(kernel: Mapping[str, TypeCounters]) -> list[Sample]:
    out: list[Sample] = []
    for name, c in kernel.items():
        labels = {"type": name}
        for what in KERNEL_COUNTERS:
            out.append(metric(f"sysward_kernel_{what}_total").sample(getattr(c, what), labels))
    return out


def discarder_samples(disc: Discarders | None) -> list[Sample]:
    """The discarders' own counts (their hits are the kernel's ``discarded`` counter)."""
    if disc is None:
        return []
    st = disc.stats
    values = {"sysward_discarders_added_total": st.added,
              "sysward_discarders_evicted_total": st.evicted,
              "sysward_discarders_cleared_total": st.cleared,
              "sysward_discarders_live": st.live,
              "sysward_discarders_capacity": disc.capacity}
    return [metric(name).sample(v) for name, v in values.items()]


def output_samples(totals: OutputTotals) -> list[Sample]:
    alerts, suppressed = metric("sysward_rules_alerts_total"), \
        metric("sysward_outputs_suppressed_total")
    out = [alerts.sample(n, {"rule": rule, "priority": prio})
           for (rule, prio), n in totals.alerts_by_rule.items()]
    out += [suppressed.sample(n, {"rule": rule})
            for rule, n in totals.suppressed_by_rule.items()]
    out.append(metric("sysward_outputs_grouped_total").sample(totals.grouped))
    for name, s in totals.outputs.items():
        for what in OUTPUT_COUNTERS:
            out.append(metric(f"sysward_outputs_{what}_total").sample(s.get(what, 0),
                                                                      {"output": name}))
    return out


def enforce_samples(counters: Mapping[str, int]) -> list[Sample]:
    return [metric(f"sysward_enforce_{name}_total").sample(value)
            for name, value in counters.items()]


def stats_line(now: Totals, last: Totals, interval: float, outputs: OutputTotals) -> str:
    """Falco-style: events, drops and drop percentage for the interval and in total."""
    d = now.minus(last)
    pct = 100.0 * d.drops / d.events if d.events else 0.0
    tot_pct = 100.0 * now.drops / now.events if now.events else 0.0
    return (
        f"sysward stats: last {interval:g}s: events {d.events} ({d.events / interval:.0f}/s),"
        f" drops {d.drops} ({pct:.2f}%), rejected in the kernel {d.rejected}"
        f" ({d.discarded} by discarders); total: events"
        f" {now.events}, drops {now.drops} ({tot_pct:.2f}%), rejected in the kernel"
        f" {now.rejected} ({now.discarded} by discarders), alerts {outputs.alerts},"
        f" suppressed {outputs.suppressed}"
    )


def final_report(kernel: Mapping[str, TypeCounters], pipeline: Mapping[str, Any],
                 enrichment: Mapping[str, int | float], outputs: OutputTotals,
                 enforcement: Mapping[str, int], shutdown_s: float,
                 discarders: Discarders | None = None) -> str:
    """The counters printed at exit, one stage a line (the kernel's as a table)."""
    from sysward.agent.sensors import format_counters

    lines = ["sysward: final counters"]
    if kernel:
        lines.append(format_counters(dict(kernel)))
    lines.append("pipeline: " + " ".join(f"{k}={v}" for k, v in pipeline.items()))
    lines.append("enrichment: " + " ".join(
        f"{k.removeprefix('sysward_enrich_')}={v}" for k, v in enrichment.items()))
    lines.append("outputs: " + outputs.summary())
    if discarders is not None:
        hits = sum(c.discarded for c in kernel.values())
        lines.append(f"discarders: hits={hits} {discarders.summary()}")
    if enforcement:
        lines.append("enforcement: " + " ".join(f"{k}={v}" for k, v in enforcement.items()))
    lines.append(f"shutdown: {shutdown_s * 1000:.0f} ms")
    return "\n".join(lines)
