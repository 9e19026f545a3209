"""``sysward replay``: run recorded events (``sysward events`` JSON lines) through the rules.

Each line is one event (docs/events.md); an optional ``proc`` object gives its process
context, otherwise enrichment rebuilds the process tree from the process snapshot at the
start of a capture (``{"snapshot": "proc"}`` lines) and the exec/clone/exit events of the
stream itself (never from this machine's /proc: the capture may come from elsewhere).
Alerts print in Falco's JSON shape or as Falco's text line.

A line that is not a valid event is counted and reported with its line number; an event that
makes a rule fail to evaluate is counted the same way.  Neither stops the replay.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import orjson

from sysward.errors import SyswardError
from sysward.events.model import Event, Process, process_from_dict

MAX_REPORTED_LINES = 20  # line numbers listed per kind of problem; all are counted


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    snapshot: int = 0  # processes read from the capture's snapshot lines
    alerts: int = 0
    bad_lines: int = 0
    bad_line_numbers: list[int] = field(default_factory=list)
    bad_reasons: list[str] = field(default_factory=list)  # one per listed line number
    eval_errors: int = 0
    rejected: int = 0  # events the kernel prefilter model dropped (--prefilter)
    discarded: int = 0  # of rejected: by the model's discarders (--discarders)
    discarders_learned: int = 0
    eval_error_lines: list[int] = field(default_factory=list)
    rules_fired: dict[str, int] = field(default_factory=dict)

    def _note(self, numbers: list[int], lineno: int) -> None:
        if len(numbers) < MAX_REPORTED_LINES:
            numbers.append(lineno)

    def summary(self) -> str:
        text = f"replayed {self.events} events: {self.alerts} alerts"
        if self.rejected:
            text += f" ({self.rejected} events dropped by the kernel prefilter's model"
            text += f", {self.discarded} of them by discarders)" if self.discarded else ")"
        if self.discarders_learned:
            text += f" ({self.discarders_learned} discarders learned)"
        if self.snapshot:
            text += f" ({self.snapshot} processes from the capture's snapshot)"
        if self.bad_lines:
            lines = ", ".join(f"line {n}: {why}" for n, why in
                              zip(self.bad_line_numbers, self.bad_reasons, strict=True))
            more = ", ..." if self.bad_lines > len(self.bad_line_numbers) else ""
            text += f"; {self.bad_lines} bad lines skipped ({lines}{more})"
        if self.eval_errors:
            lines = ", ".join(map(str, self.eval_error_lines))
            text += f"; {self.eval_errors} events failed to evaluate (line {lines})"
        return text


_SNAPSHOT_PREFIX = b'{"snapshot":'


def parse_snapshot(line: bytes | str) -> Process:
    """One ``{"snapshot": "proc", "proc": {...}}`` line -> Process; ValueError when bad."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if data.get("snapshot") != "proc" or not isinstance(data.get("proc"), dict):
        raise ValueError("a snapshot line needs \"snapshot\": \"proc\" and a 'proc' object")
    try:
        return process_from_dict(data["proc"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad snapshot process ({exc})") from None


def parse_event(line: bytes | str) -> Event:
    """One JSON line -> Event; ValueError with the reason when it is not a valid event."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if not isinstance(data.get("type"), str) or not data["type"]:
        raise ValueError("no 'type' string")
    if not isinstance(data.get("ts"), int) or isinstance(data["ts"], bool):
        raise ValueError("no integer 'ts'")
    if "args" in data and data["args"] is not None and not isinstance(data["args"], dict):
        raise ValueError("'args' is not an object")
    for key, value in data.items():
        if key in _INT_HEADER and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"'{key}' is not an integer")
    try:
        return Event.from_dict(data)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ValueError(f"bad event ({exc})") from None


_INT_HEADER = frozenset({"num", "cpu", "pid", "tid", "ppid", "uid", "gid", "euid", "egid",
                         "loginuid", "cgroup_id", "pidns", "mntns", "tty", "start_time", "res",
                         "nthreads", "nchilds"})


def replay_events(lines: Iterable[bytes | str], match: Callable[[Event], list[Any]],
           alert: Callable[[Any, Event], Any], emit: Callable[[Any], None],
           enrich: Callable[[Event], None] | None = None,
           seed: Callable[[Process], None] | None = None,
           keep: Callable[[Event], bool] | None = None,
           after: Callable[[Event, list[Any], ReplayStats], None] | None = None) -> ReplayStats:
    """Feed ``lines`` through enrichment and ``match``; ``emit`` each alert.

    Snapshot lines go to ``seed`` (the process table) and are not events.  ``keep``: the
    kernel's decision (the prefilter's model); an event it drops is counted and goes no further.
    ``after``: called with each evaluated event and the rules it fired (the discarders learn).
    """
    stats = ReplayStats()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        raw = line.encode() if isinstance(line, str) else line
        try:
            if raw.lstrip().startswith(_SNAPSHOT_PREFIX):
                proc = parse_snapshot(raw)
                stats.snapshot += 1
                if seed is not None:
                    seed(proc)
                continue
            event = parse_event(raw)
        except ValueError as exc:
            stats.bad_lines += 1
            if len(stats.bad_line_numbers) < MAX_REPORTED_LINES:
                stats.bad_line_numbers.append(lineno)
                stats.bad_reasons.append(str(exc))
            continue
        stats.events += 1
        if not event.num:
            event.num = stats.events
        if keep is not None and not keep(event):
            stats.rejected += 1
            continue
        try:
            if enrich is not None:
                enrich(event)
            fired = match(event)
        except Exception:  # noqa: BLE001 - a malformed event must not stop the replay
            stats.eval_errors += 1
            stats._note(stats.eval_error_lines, lineno)
            continue
        if after is not None:
            after(event, fired, stats)
        for rule in fired:
            stats.alerts += 1
            stats.rules_fired[rule.name] = stats.rules_fired.get(rule.name, 0) + 1
            emit(alert(rule, event))
    return stats


def _open_input(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    p = Path(path)
    what = f"cannot read events file '{path}'"
    if p.is_dir():
        raise SyswardError(f"{what}: it is a directory; give one file of JSON lines written "
                           "by 'sysward events --output FILE' (or '-' for stdin).")
    if not p.exists():
        raise SyswardError(f"{what}: no such file; give the JSON lines written by "
                           "'sysward events' (or '-' for stdin).")
    try:
        return p.open("rb")
    except OSError as exc:
        raise SyswardError(f"{what}: {exc.strerror}; check its permissions.") from None


def _discarder_model(ruleset: Any, approve: Callable[[Event], bool]) -> tuple[
        Callable[[Event], bool], Callable[[Event, list[Any], ReplayStats], None]]:
    """The kernel's discarder check and the agent's learning, over an in-memory map."""
    from sysward.agent.engine import kernel_types
    from sysward.enforce.prefilter.discarders import Discarders, MemoryMap, compile_discarders

    attach, _ = kernel_types(ruleset)
    disc = Discarders(compile_discarders(ruleset.rules, attach), MemoryMap(), MemoryMap())
    hits = [0]

    def keep(event: Event) -> bool:
        if disc.holds(event):
            hits[0] += 1
            return False
        return approve(event)

    def after(event: Event, fired: list[Any], stats: ReplayStats) -> None:
        if not fired and event.type in disc.learning:
            disc.learn(event)
        stats.discarders_learned = disc.stats.added
        stats.discarded = hits[0]

    return keep, after


@click.command(name="replay")
@click.argument("events_file", metavar="FILE.jsonl")
@click.option("--rules", "rule_paths", multiple=True, metavar="FILE|DIR",
              help="Rule file or directory (repeatable); default: the packaged rules "
                   "('sysward rules path').")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json",
              show_default=True, help="Falco's JSON alert shape, or its text line.")
@click.option("--hostname", default=None, help="Hostname to put in alerts (default: this host).")
@click.option("--prefilter", is_flag=True,
              help="Drop first the events the kernel prefilter would drop (its Python model): "
                   "the alerts must be the same as without.")
@click.option("--discarders", is_flag=True,
              help="With --prefilter: learn discarders as the agent does (after each event "
                   "that fired nothing) and drop the later events whose path is one; the "
                   "model drops a relative path's events too, which the kernel does not.")
def replay(events_file: str, rule_paths: tuple[str, ...], fmt: str,
               hostname: str | None, prefilter: bool, discarders: bool) -> None:
    """Evaluate rules against recorded events and print the alerts.

    Exits 1 when the file holds no valid event.
    """
    from sysward.enrich import Enricher
    from sysward.rules import alert_for, load_rules
    from sysward.rules.packaged import PACKAGED_RULES_DIR

    paths = list(rule_paths) or [str(PACKAGED_RULES_DIR)]
    stream = _open_input(events_file)  # a bad file is reported before rules are compiled
    result = load_rules(paths)
    for diag in result.errors:
        click.echo(f"sysward: {diag}", err=True)
    if result.rules_loaded == 0:
        raise SyswardError("no rule loaded from " + ", ".join(paths)
                           + "; run 'sysward rules check' on them to see why.")
    host = hostname or socket.gethostname()
    enricher = Enricher(seed_from_proc=False)
    out = sys.stdout.buffer
    unlinked: list[Process] = []

    def seed(proc: Process) -> None:
        enricher.table.put(proc)
        unlinked.append(proc)

    def enrich(event: Event) -> None:
        if unlinked:  # the snapshot is complete once events start: link every parent
            for proc in unlinked:
                proc.parent = enricher.table.get(proc.ppid) if proc.ppid else None
            unlinked.clear()
        enricher.process(event)

    def emit(alert: Any) -> None:
        if fmt == "json":
            out.write(alert.to_json() + b"\n")
        else:
            out.write(alert.text_line().encode() + b"\n")

    keep: Callable[[Event], bool] | None = None
    if prefilter:
        from sysward.agent.engine import kernel_types
        from sysward.enforce.prefilter import build_tables, compile_approvers, decide
        from sysward.enforce.prefilter.model import facts_from_event

        attach, _ = kernel_types(result.ruleset)
        tables = build_tables(compile_approvers(result.ruleset.rules, attach))

        def keep(event: Event) -> bool:
            return decide(tables, facts_from_event(event))

    after: Callable[[Event, list[Any], ReplayStats], None] | None = None
    if discarders:
        if keep is None:
            raise SyswardError("--discarders needs --prefilter: discarders are part of the "
                               "kernel prefilter.")
        keep, after = _discarder_model(result.ruleset, keep)

    try:
        stats = replay_events(stream, result.ruleset.match,
                              lambda r, e: alert_for(r, e, host), emit, enrich, seed, keep,
                              after)
    finally:
        out.flush()
        if stream is not sys.stdin.buffer:
            stream.close()
    click.echo(f"sysward: {stats.summary()}", err=True)
    if stats.events == 0:
        raise SyswardError(f"no valid event in {events_file}" +
                           (f" ({stats.bad_lines} bad lines)" if stats.bad_lines else "") +
                           "; give the JSON lines written by 'sysward events'.",
                           exit_code=1)
