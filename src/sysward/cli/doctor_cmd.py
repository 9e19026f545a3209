"""``sysward doctor``: what this kernel and host let sysward do, one line per capability."""

from __future__ import annotations

import sys

import click
import orjson


@click.command(name="doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(as_json: bool) -> None:
    """Check what this kernel and host allow (exit 1 when something sysward needs is missing)."""
    from sysward.kernel.probe import probe_all

    caps = probe_all()
    ready = all(c.ok for c in caps if c.required)
    if as_json:
        report = {"ready": ready, "capabilities": [c.as_dict() for c in caps]}
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        width = max(len(c.name) for c in caps)
        for c in caps:
            status = "ok" if c.ok else "missing"
            marker = "" if c.ok or not c.required else "  [required]"
            click.echo(f"{status:<8} {c.name:<{width}}  {c.detail}{marker}")
        if ready:
            click.echo("sysward can run on this host.")
        else:
            needed = ", ".join(c.name for c in caps if c.required and not c.ok)
            click.echo(f"sysward cannot run here: missing {needed}.")
    sys.exit(0 if ready else 1)
