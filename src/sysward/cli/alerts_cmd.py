"""``sysward alerts``: query the sqlite alert store (while the agent writes to it)."""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime
from typing import Any

import click

from sysward.alert import Priority
from sysward.errors import SyswardError
from sysward.outputs.sqlite_store import AlertStore, StoredAlert

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_STYLE = {
    Priority.EMERGENCY: "bold white on red",
    Priority.ALERT: "bold red",
    Priority.CRITICAL: "bold red",
    Priority.ERROR: "red",
    Priority.WARNING: "yellow",
    Priority.NOTICE: "cyan",
    Priority.INFORMATIONAL: "green",
    Priority.DEBUG: "dim",
}
DEFAULT_LIMIT = 1000


def parse_since(text: str, now_ns: int | None = None) -> int:
    """``30s``/``15m``/``1h``/``2d``/``1w`` ago, or an ISO time (local unless it has a zone)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
        return now_ns - int(seconds * 1e9)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SyswardError(
            f"--since {text!r} is neither a duration (30s, 15m, 1h, 2d) nor a time"
            " (2024-05-01T12:00); use one of those forms."
        ) from None
    return int(when.timestamp() * 1e9)


def _when(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(secs)) + f".{frac // 1000:06d}"


def _line(row: StoredAlert) -> str:
    a = row.alert
    mark = " (notification suppressed)" if row.suppressed else ""
    return f"{_when(a.time)} {a.priority.label} [{a.rule}] {a.output}{mark}"


def _write_json(rows: list[StoredAlert]) -> None:
    out = sys.stdout.buffer
    for row in rows:
        out.write(row.alert.to_json() + b"\n")
    out.flush()


def _write_lines(rows: list[StoredAlert]) -> None:
    for row in rows:
        click.echo(_line(row))


def _write_table(rows: list[StoredAlert], limited: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print("no alerts match.")
        return
    table = Table(show_lines=False, header_style="bold")
    table.add_column("time", no_wrap=True)
    table.add_column("priority", no_wrap=True)
    table.add_column("rule")
    table.add_column("output", overflow="fold")
    for row in rows:
        a = row.alert
        output = a.output + (" [dim](notification suppressed)[/dim]" if row.suppressed else "")
        table.add_row(
            _when(a.time),
            f"[{_STYLE[a.priority]}]{a.priority.label}[/]",
            a.rule,
            output,
        )
    console.print(table)
    if limited:
        console.print(f"[dim]showing the newest {len(rows)}; use --limit N for more.[/dim]")


@click.command(name="alerts")
@click.option("--db", "db", metavar="PATH", default=None,
              help="The alert store (default: outputs.sqlite.path, /var/lib/sysward/alerts.db).")
@click.option("--config", "config_path", metavar="FILE", default=None,
              help="Read the store path from this config file.")
@click.option("--since", metavar="WHEN", default=None,
              help="Only alerts newer than this: 30s, 15m, 1h, 2d, or an ISO time.")
@click.option("--rule", metavar="NAME", default=None, help="Only alerts of this rule.")
@click.option("--min-priority", metavar="P", default=None,
              help="Only alerts at least this severe (emergency ... debug).")
@click.option("--json", "as_json", is_flag=True, help="One Falco-shaped JSON object per line.")
@click.option("--follow", "-f", is_flag=True, help="Keep polling for new alerts.")
@click.option("--limit", type=click.IntRange(min=1), default=DEFAULT_LIMIT, show_default=True,
              help="At most the newest N matching alerts.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, hidden=True,
              help="Seconds between polls with --follow.")
def alerts(
    db: str | None,
    config_path: str | None,
    since: str | None,
    rule: str | None,
    min_priority: str | None,
    as_json: bool,
    follow: bool,
    limit: int,
    interval: float,
) -> None:
    """Query the sqlite alert store that `sysward run` writes.

    On a terminal the alerts are a table; to a pipe or a file, one line per alert (--json:
    one Falco-shaped JSON object per line).
    """
    if db is None:
        from sysward.config import load_config

        db = load_config(config_path, {}).outputs.sqlite.path
    filters: dict[str, Any] = {}
    if since is not None:
        filters["since_ns"] = parse_since(since)
    if rule is not None:
        filters["rule"] = rule
    if min_priority is not None:
        try:
            filters["min_priority"] = Priority.parse(min_priority)
        except ValueError as exc:
            raise SyswardError(f"--min-priority: {exc}.") from None
    with AlertStore(db) as store:
        last_id = store.last_id()
        rows = store.query(limit=limit, until_id=last_id, **filters)
        if as_json:
            _write_json(rows)
        elif follow or not sys.stdout.isatty():
            # A table wraps each alert over many lines once it is not on a terminal of known
            # width: to a pipe or a file, one line per alert (grep, wc -l and less work).
            _write_lines(rows)
            if not rows and not follow:
                click.echo("no alerts match.", err=True)
        else:
            _write_table(rows, limited=len(rows) == limit)
        if not follow:
            return
        try:
            while True:
                time.sleep(interval)
                last_id, new = store.follow_after(last_id, **filters)
                if as_json:
                    _write_json(new)
                elif new:
                    _write_lines(new)
                    sys.stdout.flush()
        except KeyboardInterrupt:
            return
