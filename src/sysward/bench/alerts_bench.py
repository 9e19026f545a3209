"""``sysward bench alerts``: microseconds per alert, from a rule's match to the alert written,
through each output.

A pool of (rule, event) pairs that match is built once from the synthetic stream of
``bench rules`` and the chosen rule files.  For each output in turn, a fresh dispatcher with
only that output is made, N alerts are rendered (``alert_for``: the output template and
``output_fields``) and emitted, and the clock stops when the output has flushed the last one
to its sink: a real file, a real sqlite store, a UDP syslog receiver and an HTTP receiver on
this machine's loopback, stdout to /dev/null.  The output's queue is made larger than N so
that none is dropped (a drop would make the figure meaningless; drops are reported).

Alerts are rendered and handed over in batches of ``--batch`` (the agent's worker renders the
alerts of one ring-buffer drain and dispatches them in one call).  Reported per output: us per
alert (all of it: render, dispatch, encode, write), as wall-clock time and as the CPU time of
the whole process (every thread: the emitting one and the writer), and once, the us per alert
of rendering alone.  On a machine other work loads, the CPU figure is the one that still
measures the path (wall time then includes waiting for a CPU).  The outputs write from their
own threads, as in the agent, so the figure includes the hand-offs between the emitting thread
and the writer.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import orjson

from sysward.bench.rules_bench import default_rule_paths, synthetic_pool
from sysward.errors import SyswardError
from sysward.events.model import Event
from sysward.outputs.base import Output
from sysward.outputs.dispatcher import Dispatcher
from sysward.outputs.file import FileOutput
from sysward.outputs.http import HttpOutput
from sysward.outputs.sqlite_store import SqliteOutput
from sysward.outputs.stdout import StdoutOutput
from sysward.outputs.syslog import SyslogOutput
from sysward.rules import load_rules
from sysward.rules.packaged import PACKAGED_RULES_DIR
from sysward.rules.ruleset import CompiledRule, alert_for

DEFAULT_ALERTS = 20_000
#: Alerts per dispatch: about what one 5 ms drain brings at 40k alerts/s.
DEFAULT_BATCH = 200
OUTPUTS = ("file", "sqlite", "stdout", "syslog", "http")


@dataclass
class OutputFigure:
    output: str
    alerts: int
    seconds: float
    us_per_alert: float
    cpu_us_per_alert: float  # process CPU time (all threads) per alert
    written: int
    dropped: int
    failed: int


def matching_pairs(rule_paths: Sequence[str], want: int = 2000) -> list[tuple[CompiledRule, Event]]:
    """(rule, event) pairs of the synthetic stream that fire, up to ``want`` distinct ones."""
    result = load_rules(list(rule_paths))
    result.raise_for_errors()
    pairs: list[tuple[CompiledRule, Event]] = []
    for event in synthetic_pool():
        for rule in result.ruleset.match(event):
            pairs.append((rule, event))
            if len(pairs) >= want:
                return pairs
    if not pairs:
        raise SyswardError("no rule of the chosen files matches the synthetic events; "
                           "pass --rules with rules that fire (the default does).")
    return pairs


@contextlib.contextmanager
def _http_receiver() -> Iterator[tuple[str, list[int]]]:
    """An HTTP server on 127.0.0.1 that accepts alert batches and counts their lines."""
    received = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received[0] += max(1, body.count(b"\n")) if body else 0
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", received
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _udp_sink() -> Iterator[str]:
    """A UDP socket on 127.0.0.1 that receives (and discards) syslog datagrams."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    stop = threading.Event()

    def drain() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                sock.recv(65536)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(1.0)
        sock.close()


def _make_output(kind: str, workdir: Path, queue: int, url: str, syslog_addr: str,
                 devnull: Any) -> tuple[Output | None, SqliteOutput | None]:
    if kind == "file":
        return FileOutput(workdir / "alerts.jsonl", queue_size=queue), None
    if kind == "sqlite":
        return None, SqliteOutput(workdir / "alerts.db", queue_size=queue)
    if kind == "stdout":
        return StdoutOutput("json", stream=devnull, queue_size=queue), None
    if kind == "syslog":
        return SyslogOutput(syslog_addr, queue_size=queue), None
    return HttpOutput(url, queue_size=queue, batch_size=200, flush_interval_s=0.05), None


def measure_output(kind: str, pairs: list[tuple[CompiledRule, Event]], count: int,
                   workdir: Path, url: str, syslog_addr: str, devnull: Any,
                   batch: int = DEFAULT_BATCH) -> OutputFigure:
    output, store = _make_output(kind, workdir, count + 1, url, syslog_addr, devnull)
    dispatcher = Dispatcher([output] if output is not None else [], store=store)
    n = len(pairs)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for start in range(0, count, batch):
        alerts = []
        for i in range(start, min(count, start + batch)):
            rule, event = pairs[i % n]
            alerts.append(alert_for(rule, event, "bench"))
        dispatcher.emit_batch(alerts)
    dispatcher.flush(timeout_s=600.0)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    stats = (store if store is not None else output).stats()  # type: ignore[union-attr]
    dispatcher.close(timeout_s=5.0)
    return OutputFigure(kind, count, seconds, seconds / count * 1e6, cpu / count * 1e6,
                        stats.get("sent", 0), stats.get("dropped", 0), stats.get("failed", 0))


def measure_render(pairs: list[tuple[CompiledRule, Event]], count: int) -> float:
    """CPU us per alert of rendering alone (template + output_fields, no output)."""
    n = len(pairs)
    t0 = time.thread_time()
    for i in range(count):
        rule, event = pairs[i % n]
        alert_for(rule, event, "bench")
    return (time.thread_time() - t0) / count * 1e6


def run_alerts_bench(rule_paths: Sequence[str], count: int, outputs: Sequence[str],
                     progress: Callable[[str], None] | None = None,
                     batch: int = DEFAULT_BATCH, repeat: int = 1) -> dict[str, Any]:
    pairs = matching_pairs(rule_paths)
    figures: list[OutputFigure] = []
    with tempfile.TemporaryDirectory(prefix="sysward-bench-alerts-") as tmp, \
            _http_receiver() as (url, _received), _udp_sink() as syslog_addr, \
            open(os.devnull, "wb") as devnull:
        # Rounds take the outputs in turn, so a burst of other load on a shared machine
        # spreads over all of them instead of falling on one.
        for round_ in range(repeat):
            for kind in outputs:
                workdir = Path(tmp) / f"{kind}-{round_}"
                workdir.mkdir()
                fig = measure_output(kind, pairs, count, workdir, url, syslog_addr, devnull,
                                     batch)
                figures.append(fig)
                if progress is not None:
                    progress(f"{kind}: {fig.us_per_alert:.1f} us/alert")
    return {"rules": list(rule_paths), "distinct_alerts": len(pairs), "alerts": count,
            "batch": batch, "repeat": repeat,
            "render_us_per_alert": measure_render(pairs, count),
            "outputs": [asdict(f) for f in figures]}


@click.command(name="alerts")
@click.option("--rules", "rule_paths", multiple=True, metavar="FILE|DIR",
              help="Rule files (default: sysward's packaged rules).")
@click.option("--alerts", "count", type=click.IntRange(min=100), default=DEFAULT_ALERTS,
              show_default=True, help="How many alerts to send through each output.")
@click.option("--output", "outputs", multiple=True, type=click.Choice(OUTPUTS),
              help="Outputs to measure (default: all).")
@click.option("--batch", type=click.IntRange(min=1), default=DEFAULT_BATCH, show_default=True,
              help="Alerts rendered and dispatched together (the worker's batch).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Rounds over the outputs (taken in turn).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def alerts_bench(rule_paths: tuple[str, ...], count: int, outputs: tuple[str, ...],
                 batch: int, repeat: int, as_json: bool) -> None:
    """Microseconds per alert, from match to written, through each output."""
    paths = list(rule_paths) or [str(PACKAGED_RULES_DIR)]
    try:
        report = run_alerts_bench(paths, count, outputs or OUTPUTS, batch=batch, repeat=repeat)
    except SyswardError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"distinct alerts: {report['distinct_alerts']}; alerts per output: {count};"
               f" batch {batch}")
    click.echo(f"render only (template + output_fields): "
               f"{report['render_us_per_alert']:.2f} us/alert (CPU)")
    for f in report["outputs"]:
        note = f"  DROPPED {f['dropped']}" if f["dropped"] else ""
        note += f"  FAILED {f['failed']}" if f["failed"] else ""
        click.echo(f"{f['output']:<7} {f['us_per_alert']:8.2f} us/alert wall "
                   f"{f['cpu_us_per_alert']:8.2f} CPU  "
                   f"({f['written']} written in {f['seconds']:.2f} s){note}")


__all__ = ["alerts_bench", "default_rule_paths", "run_alerts_bench"]
