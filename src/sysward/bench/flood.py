"""``sysward bench flood``: N workers issue one syscall as fast as they can, against a real
agent with its default rules; one table per syscall.

Columns: fired (calls the workers counted), observed in the kernel (the agent's per-type
``seen`` counter), filtered in the kernel, lost at the ring buffer, processed in user space
(events through the rule engine), alerts emitted, wall time, rates.  setuid is issued from a
non-root uid as kernelradar's flood does (every call fails with EPERM); open opens /dev/null;
connect re-connects one UDP socket to 127.0.0.1 (no packet leaves).

Agent RSS is sampled throughout: idle before, peak during, and a few seconds after.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from sysward.bench.agent import Agent, AgentCounters
from sysward.bench.cbuild import build
from sysward.bench.generate import RssSampler
from sysward.bench.report import Report, Table, bench_console
from sysward.errors import SyswardError

SYSCALLS = ("setuid", "open", "connect")
# the agent's event types each flood syscall lands in
_TYPES = {"setuid": ("setuid",), "open": ("openat", "open"), "connect": ("connect",)}
FLOOD_UID = 65534  # nobody
TARGET_KERNEL_RATE = 1_000_000


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_flood(agent: Agent, syscall: str, total: int, workers: int) -> dict[str, Any]:
    exe = build("flood")
    per = max(1, total // workers)
    arg = "/dev/null" if syscall == "open" else str(_closed_udp_port())
    c0 = agent.counters()
    t0 = time.monotonic()
    procs = [subprocess.Popen([str(exe), syscall, str(per), str(FLOOD_UID), arg],
                              stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    fired = 0
    busy_ns = 0
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SyswardError(f"a flood worker failed (status {p.returncode}).")
        calls, ns = out.split()
        fired += int(calls)
        busy_ns = max(busy_ns, int(ns))
    wall = time.monotonic() - t0
    c_end = agent.counters()
    # user space keeps working after the workers stop: until its queues are empty
    deadline = time.monotonic() + 60
    c1 = c_end
    while time.monotonic() < deadline:
        time.sleep(0.1)
        c1 = agent.counters()
        if c1.queue_depth == 0:
            break
    drain = time.monotonic() - t0 - wall
    types = _TYPES[syscall]

    def per_type(c: AgentCounters, d: dict[str, float]) -> float:
        return sum(d.get(t, 0.0) for t in types)

    # kernel counts at the end of the flood: later events on a busy host are not the flood's
    observed = per_type(c_end, c_end.per_type_seen) - per_type(c0, c0.per_type_seen)
    lost = per_type(c_end, c_end.per_type_lost) - per_type(c0, c0.per_type_lost)
    filtered = per_type(c_end, c_end.per_type_filtered) - per_type(c0, c0.per_type_filtered)
    return {
        "syscall": syscall, "workers": workers, "fired": fired,
        "observed": int(observed), "filtered": int(filtered), "lost": int(lost),
        "processed": int(c1.events - c0.events),
        "queue_dropped": int(c1.queue_dropped - c0.queue_dropped),
        "alerts": int(c1.matches - c0.matches), "wall_s": wall, "drain_s": drain,
        "fired_per_s": fired / (busy_ns / 1e9) if busy_ns else 0.0,
        "observed_per_s": observed / wall if wall else 0.0,
        "processed_per_s": (c1.events - c0.events) / (wall + drain) if wall + drain else 0.0,
    }


def flood_table(r: dict[str, Any]) -> Table:
    t = Table(f"flood: {r['syscall']} ({r['workers']} workers)", ["measure", "count", "per s"])
    t.add("fired (counted by the workers)", r["fired"], r["fired_per_s"])
    t.add("observed in the kernel", r["observed"], r["observed_per_s"])
    t.add("filtered in the kernel", r["filtered"], None)
    t.add("lost at the ring buffer", r["lost"], None)
    t.add("processed in user space (all types)", r["processed"], r["processed_per_s"])
    t.add("dropped between stages (all types)", r["queue_dropped"], None)
    t.add("alerts emitted", r["alerts"], None)
    t.add("wall time s (flood / drain after)", f"{r['wall_s']:.2f} / {r['drain_s']:.2f}", None)
    return t


@click.command(name="flood")
@click.option("--events", type=int, default=1_000_000, show_default=True,
              help="Calls per syscall, over all workers.")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--syscall", "syscalls", multiple=True, type=click.Choice(SYSCALLS),
              help="Syscall(s) to flood (default: all three).")
@click.option("--ringbuf-mb", type=int, default=None, help="Ring buffer size of the agent.")
@click.option("--rules", multiple=True, metavar="FILE|DIR",
              help="Rules of the agent (default: sysward's own).")
@click.option("--out", type=click.Path(path_type=Path), default=None)
def flood_bench(events: int, workers: int, syscalls: tuple[str, ...], ringbuf_mb: int | None,
                rules: tuple[str, ...], out: Path | None) -> None:
    """Flood setuid / open / connect and count every event from the syscall to the alert."""
    if events < 1 or workers < 1:
        raise SyswardError("--events and --workers must be at least 1.")
    report = Report("flood", out, bench_console())
    results = []
    with Agent.start(report.outdir / "agent", rules=rules, ringbuf_mb=ringbuf_mb) as agent:
        time.sleep(2.0)
        idle = agent.counters().rss_bytes
        sampler = RssSampler(agent.pid, 0.2)
        sampler.start()
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=report.console, transient=True) as progress:
            for sc in syscalls or SYSCALLS:
                task = progress.add_task(f"flooding {sc}: {events:,} calls, {workers} workers")
                r = run_flood(agent, sc, events, workers)
                progress.remove_task(task)
                results.append(r)
                report.table(flood_table(r))
        time.sleep(3.0)
        after = agent.counters().rss_bytes
        sampler.stop()
        shutdown = agent.stop()
    peak = max([p[1] for p in sampler.points] + [idle / 2**20])
    report.data.update(results=results, idle_rss_mb=idle / 2**20, peak_rss_mb=peak,
                       after_rss_mb=after / 2**20, shutdown_s=shutdown,
                       rss_over_time=sampler.points)
    report.say(f"agent RSS: idle {idle / 2**20:.0f} MB, peak {peak:.0f} MB during the floods, "
               f"{after / 2**20:.0f} MB 3 s after; shutdown {shutdown * 1000:.0f} ms")
    for r in results:
        ok = r["lost"] == 0 and r["observed_per_s"] >= TARGET_KERNEL_RATE
        report.say(f"{r['syscall']}: {r['observed_per_s']:,.0f} observed/s in the kernel, "
                   f"{r['lost']:,} lost; target >= {TARGET_KERNEL_RATE:,}/s with 0 lost: "
                   + ("met" if ok else "missed"))
    pts = sampler.points
    report.plot("rss_over_time.png", "Agent RSS during the floods", "s", "RSS MB",
                {"sysward": ([p[0] for p in pts], [p[1] for p in pts])}, marker="")
    report.write()
