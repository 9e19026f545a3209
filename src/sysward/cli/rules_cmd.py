"""``sysward rules``: check rule files (``check``), where the packaged ones are (``path``), and
the field registry (``fields``)."""

from __future__ import annotations

import click
import orjson

from sysward.cli.rules_fields_cmd import fields


@click.group(name="rules")
def rules() -> None:
    """Check rule files, print where the packaged rules are, list fields."""


@rules.command(name="path")
def path() -> None:
    """Print the directory of the packaged default rules."""
    from sysward.rules.packaged import PACKAGED_RULES_DIR

    click.echo(str(PACKAGED_RULES_DIR))


@rules.command(name="check")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_context
def check(ctx: click.Context, paths: tuple[str, ...], as_json: bool) -> None:
    """Load rule FILEs / DIRs (default: the packaged rules) and report every error, warning
    and skipped rule.

    Exits 0 when everything loads, 1 otherwise.
    """
    from sysward.rules import load_rules
    from sysward.rules.packaged import PACKAGED_RULES_DIR

    result = load_rules(list(paths) or [PACKAGED_RULES_DIR])
    if as_json:
        click.echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        for d in result.errors:
            click.echo(str(d))
        for d in result.warnings:
            click.echo(str(d))
        for name, reason in result.rules_skipped:
            click.echo(f"skipped rule '{name}': {reason}")
        failed = (result.rules_total - result.rules_loaded - result.rules_disabled
                  - len(result.rules_skipped))
        click.echo(
            f"rules: {result.rules_total} total, {result.rules_loaded} loaded, "
            f"{result.rules_disabled} disabled, {len(result.rules_skipped)} skipped, "
            f"{failed} failed; macros: {result.macros}; lists: {result.lists}; "
            f"errors: {len(result.errors)}; warnings: {len(result.warnings)}"
        )
        click.echo(f"event types: {', '.join(sorted(result.ruleset.event_types)) or '-'}")
        if result.uncaptured:
            listed = ", ".join(f"{t} ({n} rule{'s' if n > 1 else ''})"
                               for t, n in result.uncaptured.items())
            click.echo(f"event types the rules name that sysward does not capture "
                       f"(those parts never match): {listed}")
    ctx.exit(0 if result.ok else 1)


rules.add_command(fields)
