"""``sysward bench``: the benchmark group.

Each benchmark lives in ``sysward.bench.<name>_bench`` and is imported only when run (they pull
in the kernel loader, numpy, ...).  Add one by adding a line to ``_BENCHES``.
"""

from __future__ import annotations

import importlib

import click

# name -> (module, attribute)
_BENCHES: dict[str, tuple[str, str]] = {
    "sensors": ("sysward.bench.sensors_bench", "sensors_bench"),
    "rules": ("sysward.bench.rules_bench", "rules_bench"),
    "generate": ("sysward.bench.generate", "generate_bench"),
    "run": ("sysward.bench.generate", "run_bench"),
    "flood": ("sysward.bench.flood", "flood_bench"),
    "churn": ("sysward.bench.churn", "churn_bench"),
    "overhead": ("sysward.bench.overhead", "overhead_bench"),
    "sizing": ("sysward.bench.sizing", "sizing_bench"),
    "enforce": ("sysward.bench.enforce_bench", "enforce_bench"),
    "latency": ("sysward.bench.latency", "latency_bench"),
    "soak": ("sysward.bench.soak", "soak_bench"),
    "kfilter": ("sysward.bench.kfilter_bench", "kfilter_bench"),
    "alerts": ("sysward.bench.alerts_bench", "alerts_bench"),
}


class _LazyBenchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_BENCHES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _BENCHES.get(cmd_name)
        if entry is None:
            return None
        command = getattr(importlib.import_module(entry[0]), entry[1])
        assert isinstance(command, click.Command)
        return command


@click.group(name="bench", cls=_LazyBenchGroup)
def bench() -> None:
    """Benchmarks: sensors, rules, ..."""
