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
@click.option("--kernel", is_flag=True,
              help="Also tell, per event type, whether the kernel prefilter can drop events "
                   "(and warn about rules that defeat it).")
@click.pass_context
def check(ctx: click.Context, paths: tuple[str, ...], as_json: bool, kernel: bool) -> None:
    """Load rule FILEs / DIRs (default: the packaged rules) and report every error, warning
    and skipped rule.

    Exits 0 when everything loads, 1 otherwise.
    """
    from sysward.rules import load_rules
    from sysward.rules.packaged import PACKAGED_RULES_DIR

    result = load_rules(list(paths) or [PACKAGED_RULES_DIR])
    report = _kernel_report(result.ruleset) if kernel and result.ok else None
    if as_json:
        data = result.to_json()
        if report is not None:
            data["kernel"] = report
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
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
        if report is not None:
            from sysward.enforce.prefilter.explain import render

            click.echo(render(report, verbose=False))
    ctx.exit(0 if result.ok else 1)


def _kernel_report(ruleset: object) -> dict[str, object]:
    from sysward.agent.engine import kernel_types
    from sysward.enforce.prefilter.explain import explain

    attach, _ = kernel_types(ruleset)  # type: ignore[arg-type]
    return explain(ruleset.rules, attach)  # type: ignore[attr-defined]


@rules.command(name="explain")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--type", "types", multiple=True, help="Only these event types (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_context
def explain_cmd(ctx: click.Context, paths: tuple[str, ...], types: tuple[str, ...],
                as_json: bool) -> None:
    """Per event type and rule: what the kernel prefilter tests, what is left to user space,
    and which rules make the kernel pass every event of a type (default: the packaged rules).
    """
    from sysward.enforce.prefilter.explain import render
    from sysward.rules import load_rules
    from sysward.rules.packaged import PACKAGED_RULES_DIR

    result = load_rules(list(paths) or [PACKAGED_RULES_DIR])
    result.raise_for_errors()
    report = _kernel_report(result.ruleset)
    if types:
        unknown = sorted(set(types) - set(report["types"]))  # type: ignore[call-overload]
        if unknown:
            raise click.UsageError(f"--type {unknown[0]}: the rules do not attach that event "
                                   "type; see 'sysward rules check' for the ones they do.")
        report["types"] = {t: v for t, v in report["types"].items()  # type: ignore[attr-defined]
                           if t in types}
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render(report))


rules.add_command(fields)
