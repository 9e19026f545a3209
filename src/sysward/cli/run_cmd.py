"""``sysward run``: the agent, live detection end to end."""

from __future__ import annotations

import logging
from typing import Any

import click

from sysward.config import (
    OUTPUT_SPEC_HELP,
    FromFlag,
    apply_output_specs,
    load_config,
    parse_set,
)


@click.command(name="run")
@click.option("--config", "config_path", metavar="FILE", default=None,
              help="YAML config file (default /etc/sysward/config.yaml when it exists).")
@click.option("--rules", "rules", multiple=True, metavar="FILE|DIR",
              help="Rule file or directory (repeatable); replaces the packaged default rules.")
@click.option("-o", "--output", "outputs", multiple=True, metavar="SPEC",
              help=f"Alert output (repeatable): {OUTPUT_SPEC_HELP}. Default: text on stdout "
                   "plus the sqlite store.")
@click.option("--min-priority", metavar="P", default=None,
              help="Drop alerts below this priority (emergency ... debug).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="Stop cleanly after S seconds (default: until SIGTERM/SIGINT).")
@click.option("--stats-interval", type=float, default=None, metavar="S",
              help="Print a stats line to stderr every S seconds.")
@click.option("--ringbuf-mb", type=int, default=None, metavar="N",
              help="Kernel ring buffer size in MiB (a power of two).")
@click.option("--queue-size", type=int, default=None, metavar="N",
              help="Capacity of each queue between pipeline stages, in events.")
@click.option("--listen", default=None, metavar="ADDR:PORT",
              help="Address of /metrics and /healthz (default 127.0.0.1:8765).")
@click.option("--no-server", is_flag=True, help="Do not serve /metrics and /healthz.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set any config key, e.g. --set rate_limit.rate=50 (repeatable).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details to stderr.")
def run(config_path: str | None, rules: tuple[str, ...], outputs: tuple[str, ...],
        min_priority: str | None, duration: float | None, stats_interval: float | None,
        ringbuf_mb: int | None, queue_size: int | None, listen: str | None, no_server: bool,
        sets: tuple[str, ...], verbose: bool) -> int:
    """Run the agent: kernel events through enrichment and rules to alerts.

    Stops on SIGTERM/SIGINT (draining queues and flushing outputs) and reloads config and
    rules on SIGHUP; a broken reload keeps the running set.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="sysward: %(levelname)s: %(message)s")
    overrides: dict[str, Any] = dict(parse_set(s) for s in sets)
    if rules:
        overrides["rules"] = list(rules)
        overrides["rules_defaults"] = False
    for key, flag, value in (("min_priority", "--min-priority", min_priority),
                             ("stats_interval_s", "--stats-interval", stats_interval),
                             ("kernel.ringbuf_mb", "--ringbuf-mb", ringbuf_mb),
                             ("pipeline.queue_size", "--queue-size", queue_size),
                             ("server.listen", "--listen", listen)):
        if value is not None:
            overrides[key] = FromFlag(value, flag)
    if no_server:
        overrides["server.enabled"] = False
    config = load_config(config_path, overrides)
    apply_output_specs(config, list(outputs))

    from sysward.agent.engine import Agent  # the kernel side loads only when the agent runs
    from sysward.kernel import require_privileges

    require_privileges()  # before anything is created on disk

    agent = Agent(config, config_path=config_path, overrides=overrides,
                  output_specs=list(outputs))
    return agent.run(duration)
