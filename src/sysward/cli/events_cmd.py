"""``sysward events``: stream decoded kernel events as JSON lines (or readable text).

The loop drains the ring buffer about every 10 ms (the programs do not wake us per event),
decodes each batch and writes it.  A JSON capture starts with one ``{"snapshot": "proc"}``
line per process alive when the programs were attached, so that ``sysward replay`` knows the
ancestry of processes that started before the capture.  On exit (``--duration``, SIGINT,
SIGTERM) it detaches everything and prints the kernel counters per type, plus what user space
delivered, to stderr.
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click
import orjson

from sysward.agent.sensors import Sensor, format_counters, raise_reader_priority
from sysward.errors import SyswardError
from sysward.events.decoder import Decoder
from sysward.events.model import Event, process_to_dict
from sysward.private_files import open_private

DRAIN_MS = 10
STATS_EVERY_S = 5.0


def text_line(ev: Event) -> str:
    """One readable line: time, type, process, result, then the arguments."""
    t = datetime.fromtimestamp(ev.ts / 1e9, tz=UTC).strftime("%H:%M:%S.%f")
    args = " ".join(f"{k}={_short(v)}" for k, v in ev.args.items())
    return (f"{t} {ev.type} pid={ev.pid} tid={ev.tid} ppid={ev.ppid} comm={ev.comm} "
            f"uid={ev.uid} res={ev.res} {args}")


def open_output(path: str) -> IO[bytes]:
    """The capture file, created 0600 (it holds every command line); one sentence if not."""
    p = Path(path)
    if p.is_dir():
        raise SyswardError(f"--output {path}: is a directory; give a file name, e.g. "
                           f"--output {p / 'events.jsonl'}.")
    try:
        return open_private(p, truncate=True, make_dirs=False)
    except OSError as exc:
        raise SyswardError(f"--output {path}: cannot create the file ({exc.strerror}); "
                           "give a path in a directory you can write.") from None


def process_snapshot() -> bytes:
    """One ``{"snapshot": "proc", ...}`` JSON line per live process (docs/events.md)."""
    from sysward.enrich import Enricher

    enricher = Enricher(seed_from_proc=True)
    now = time.time_ns()
    return b"".join(
        orjson.dumps({"snapshot": "proc", "ts": now, "proc": process_to_dict(p, depth=0)})
        + b"\n" for p in enricher.table.values())


def _short(v: Any) -> str:
    if isinstance(v, list):
        return "[" + " ".join(str(x) for x in v[:16]) + (" ..." if len(v) > 16 else "") + "]"
    return str(v)


@click.command(name="events")
@click.option("--events", "events_spec", default="all", show_default=True,
              help="Comma-separated event types or groups (exec, open, connect, fork, ...), "
                   "or 'all'.")
@click.option("--duration", type=click.FloatRange(min=0), default=0.0, metavar="S",
              help="Stop after S seconds (default 0: until SIGINT/SIGTERM).")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json",
              show_default=True)
@click.option("--output", metavar="FILE", default=None,
              help="Write events to FILE (created 0600) instead of stdout.")
@click.option("--no-snapshot", is_flag=True,
              help="Do not start a JSON capture with the processes alive at its start.")
@click.option("--ringbuf-mb", type=int, default=16, show_default=True,
              help="Ring buffer size in MiB (a power of two).")
@click.option("--stats", is_flag=True, help="Also print the kernel counters every 5 s.")
def events(events_spec: str, duration: float, fmt: str, output: str | None, ringbuf_mb: int,
           stats: bool, no_snapshot: bool) -> None:
    """Stream decoded kernel events, one JSON object per line (docs/events.md)."""
    sensor = Sensor(events_spec, ringbuf_bytes=ringbuf_mb << 20)  # validates names and size
    # Opened before anything is attached, so a bad path costs nothing but one sentence.
    out: IO[bytes] = open_output(output) if output else sys.stdout.buffer
    decoder = Decoder()
    written = 0

    def on_batch(records: list[bytes]) -> None:
        nonlocal written
        evs = decoder.decode_batch(records)
        if fmt == "json":
            out.write(b"".join(ev.to_json() + b"\n" for ev in evs))
        else:
            out.write("".join(text_line(ev) + "\n" for ev in evs).encode())
        written += len(evs)

    stopping = False

    def on_term(signum: int, frame: object) -> None:
        # A flag, not an exception: raising inside a ring-buffer callback would lose the
        # batch being written.
        nonlocal stopping
        stopping = True

    old_term = signal.signal(signal.SIGTERM, on_term)
    old_int = signal.signal(signal.SIGINT, on_term)
    sensor.start()
    reader = None
    try:
        if sensor.missing:
            click.echo(f"sysward: skipped (no tracepoint on this kernel): "
                       f"{', '.join(sensor.missing)}", err=True)
        reader = sensor.ring_buffer(on_batch)
        if fmt == "json" and not no_snapshot:
            # After the attach: a process started from here on is seen by its own events.
            out.write(process_snapshot())
        raise_reader_priority()  # this thread reads; a starved reader lets the ring overflow
        deadline = time.monotonic() + duration if duration > 0 else None
        next_stats = time.monotonic() + STATS_EVERY_S
        try:
            while not stopping and (deadline is None or time.monotonic() < deadline):
                reader.poll(DRAIN_MS)
                out.flush()
                if stats and time.monotonic() >= next_stats:
                    click.echo(format_counters(sensor.counters()), err=True)
                    next_stats += STATS_EVERY_S
        except BrokenPipeError:
            pass
        # Switch every type off in the kernel first (the programs stay attached, further
        # calls count as filtered), so the final drain delivers everything submitted.
        sensor.set_enabled([])
        try:
            reader.drain()
            out.flush()
        except BrokenPipeError:
            pass
        counters = sensor.counters()
    finally:
        if reader is not None:
            reader.close()
        sensor.close()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        if output:
            out.close()
    click.echo(format_counters(counters), err=True)
    click.echo(f"user space: delivered {written} events, {decoder.errors} undecodable records",
               err=True)
