"""Metric samples: what every stage hands to /metrics, below every stage that reports one.

A stage keeps its counters as plain ints and turns them into ``Sample``s when /metrics is read
(sysward.agent.telemetry serves them), so this module depends on nothing but the standard
library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

Kind = Literal["counter", "gauge"]


class Sample(NamedTuple):
    name: str  # sysward_<stage>_<what>_total for counters
    labels: dict[str, str]
    value: float
    kind: Kind
    help: str


def samples_from_stats(
    stats: Mapping[str, int | float], helps: Mapping[str, str] | None = None
) -> list[Sample]:
    """Turn a stage's ``stats()`` dict into samples: names ending ``_total`` are counters,
    everything else a gauge."""
    helps = helps or {}
    return [
        Sample(name, {}, float(value), "counter" if name.endswith("_total") else "gauge",
               helps.get(name, name))
        for name, value in stats.items()
    ]
