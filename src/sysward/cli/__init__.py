"""The ``sysward`` command line.

Each subcommand lives in its own module and is imported only when it is invoked, so that
``sysward rules check`` does not pay for the kernel loader and a broken optional piece
cannot take the whole CLI down.  Register a subcommand by adding it to ``_COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from sysward import __version__
from sysward.errors import SyswardError

# name -> (module, attribute, one-line help shown by `sysward --help`)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("sysward.cli.run_cmd", "run", "Run the agent: live detection with rules and outputs."),
    "events": ("sysward.cli.events_cmd", "events", "Stream decoded kernel events."),
    "doctor": ("sysward.cli.doctor_cmd", "doctor", "Check what this kernel and host allow."),
    "rules": ("sysward.cli.rules_cmd", "rules", "Check rule files and list fields."),
    "replay": ("sysward.cli.replay_cmd", "replay", "Evaluate rules against recorded events."),
    "alerts": ("sysward.cli.alerts_cmd", "alerts", "Query the sqlite alert store."),
    "bench": ("sysward.cli.bench_cmd", "bench", "Benchmarks: sensors, rules, flood, overhead..."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, short_help = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise

            @click.command(name=cmd_name, help=short_help)
            def _missing() -> None:
                raise SyswardError(f"'sysward {cmd_name}' is not available in this build.")

            return _missing
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        if command.short_help is None:
            command.short_help = short_help
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sysward")
def cli() -> None:
    """sysward: eBPF sensors, Falco-compatible rules, in-kernel enforcement."""


def main(argv: list[str] | None = None) -> int | None:
    """Console entry point: user errors become one line on stderr, never a traceback."""
    try:
        result: Any = cli.main(args=argv, prog_name="sysward", standalone_mode=False)
        return result if isinstance(result, int) else None
    except SyswardError as exc:
        click.echo(f"sysward: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("sysward: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OSError as exc:
        # Every path a command takes is checked where it is used; this is the net under
        # those checks, so that a path still names itself in one sentence, not a traceback.
        if exc.filename is None:
            raise
        click.echo(f"sysward: error: cannot use {exc.filename}: {exc.strerror}; check the "
                   "path and its permissions.", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
