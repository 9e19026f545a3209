"""``sysward rules fields``: print the field registry (table, --json or --markdown).

A plain command that rules_cmd adds to its group, so the two modules import one way only.
"""

from __future__ import annotations

import click
import orjson

from sysward.rules.fields import all_fields


@click.command(name="fields")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of field objects.")
@click.option("--markdown", is_flag=True, help="The Markdown of docs/fields.md.")
@click.argument("prefix", required=False)
def fields(as_json: bool, markdown: bool, prefix: str | None) -> None:
    """List the fields conditions and outputs can use (optionally those starting with PREFIX)."""
    if markdown:
        from sysward.rules.fields_doc import render_markdown

        click.echo(render_markdown(), nl=False)
        return
    selected = [f for f in all_fields() if prefix is None or f.name.startswith(prefix)]
    if as_json:
        items = [{"name": f.name, "type": f.type.value, "arg": f.arg.value, "multi": f.multi,
                  "filter_only": f.filter_only, "desc": f.desc,
                  "availability": f.availability} for f in selected]
        click.echo(orjson.dumps(items, option=orjson.OPT_INDENT_2).decode())
        return
    width = max((len(f.name) for f in selected), default=10) + 2
    for f in selected:
        suffix = {"index": "[N]", "key": "[NAME]", "key-optional": "[NAME]?",
                  "arg": ".NAME|[N]"}.get(f.arg.value, "")
        click.echo(f"{(f.name + suffix).ljust(width + 9)} {f.type.value:<8} {f.desc}")
