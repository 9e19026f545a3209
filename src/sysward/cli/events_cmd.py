"""``sysward events``: stream decoded kernel events as JSON lines (or readable text).

The loop drains the ring buffer about every 10 ms (the programs do not wake us per event),
decodes each batch and writes it.  On exit (``--duration``, SIGINT, SIGTERM) it detaches
everything and prints the kernel counters per type, plus what user space delivered, to stderr.
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, datetime
from typing import IO, Any

import click

from sysward.agent.sensors import Sensor, format_counters, raise_reader_priority
from sysward.events.decoder import Decoder
from sysward.events.model import Event

DRAIN_MS = 10
STATS_EVERY_S = 5.0


def text_line(ev: Event) -> str:
    """One readable line: time, type, process, result, then the arguments."""
    t = datetime.fromtimestamp(ev.ts / 1e9, tz=UTC).strftime("%H:%M:%S.%f")
    args = " ".join(f"{k}={_short(v)}" for k, v in ev.args.items())
    return (f"{t} {ev.type} pid={ev.pid} tid={ev.tid} ppid={ev.ppid} comm={ev.comm} "
            f"uid={ev.uid} res={ev.res} {args}")


def _short(v: Any) -> str:
    if isinstance(v, list):
        return "[" + " ".join(str(x) for x in v[:16]) + (" ..." if len(v) > 16 else "") + "]"
    return str(v)


@click.command(name="events")
@click.option("--events", "events_spec", default="all", show_default=True,
              help="Comma-separated event types or groups (exec, open, connect, fork, ...), "
                   "or 'all'.")
@click.option("--duration", type=float, default=0.0,
              help="Stop after this many seconds (default: until SIGINT/SIGTERM).")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write events to this file instead of stdout.")
@click.option("--ringbuf-mb", type=int, default=16, show_default=True,
              help="Ring buffer size in MiB (a power of two).")
@click.option("--stats", is_flag=True, help="Also print the kernel counters every 5 s.")
def events(events_spec: str, duration: float, fmt: str, output: str | None, ringbuf_mb: int,
           stats: bool) -> None:
    """Stream decoded kernel events, one JSON object per line (docs/events.md)."""
    sensor = Sensor(events_spec, ringbuf_bytes=ringbuf_mb << 20)  # validates names and size
    out: IO[bytes] = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
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
