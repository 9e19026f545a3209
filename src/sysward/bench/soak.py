"""``sysward bench soak``: the agent under a steady mixed load for minutes, watched over time.

A load process makes a steady mix every second: process launches (fork + exec of
/bin/true), file opens, TCP connects to a local listener, and opens of a marker path that a
rule added to the default rules fires on, so alerts flow to every output at once (a JSON lines
file, the sqlite store, a webhook and syslog over UDP, both received here).  Every sample
interval the bench reads the agent's RSS and CPU from /proc and its queue depth, drops and
matches from /metrics.

What it reports: the series (table, result.json, plots of RSS, CPU and queue depth) and the
RSS slope fitted by least squares after the warm-up, in MB per 10 minutes; the target is a
flat RSS (slope <= 1 MB per 10 minutes) with no drop.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click

from sysward.bench.agent import Agent
from sysward.bench.procstats import ProcWatch
from sysward.bench.report import Report, Table, bench_console
from sysward.errors import SyswardError
from sysward.rules.packaged import PACKAGED_RULES_DIR

TARGET_SLOPE_MB_PER_10MIN = 1.0
MARKER_DIR = "/tmp/sysward-soak-marker"
MARKER_RULE = f"""
- rule: Soak Bench Marker
  desc: fires on the marker opens of sysward bench soak
  condition: evt.type in (open, openat, openat2) and fd.name startswith {MARKER_DIR}/
  output: soak marker (file=%fd.name)
  priority: NOTICE
"""

# The load: per second `execs` launches, `opens` opens, `connects` connects and `alerts`
# marker opens, spread over 10 ms ticks; runs until killed.
_LOAD = textwrap.dedent("""
    import os, socket, subprocess, sys, time
    execs, opens, connects, alerts, port = (int(x) for x in sys.argv[1:6])
    marker_dir = sys.argv[6]
    os.makedirs(marker_dir, exist_ok=True)
    ticks = 100
    start = time.monotonic()
    n = 0
    while True:
        for t in range(ticks):
            for _ in range(opens // ticks + (1 if t < opens % ticks else 0)):
                os.close(os.open("/dev/null", os.O_RDONLY))
            if t < connects:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    pass
            if t < execs:
                subprocess.run(["/bin/true"])
            if t < alerts:
                n += 1
                path = f"{marker_dir}/{n % 1000}"
                try:
                    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
                except OSError:
                    pass
            start += 1.0 / ticks
            delay = start - time.monotonic()
            if delay > 0:
                time.sleep(delay)
""")


@dataclass(slots=True)
class SoakSample:
    t_s: float
    rss_mb: float
    cpu_pct: float
    queue_depth: float
    drops: float
    matches: float


class _Receivers:
    """A webhook and a syslog UDP socket that count what the agent sends them, and a TCP
    listener for the load's connects."""

    def __init__(self) -> None:
        self.webhook_alerts = 0
        self.syslog_messages = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.webhook_alerts += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.5)
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(128)
        self.tcp.settimeout(0.5)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.http.serve_forever, daemon=True),
                         threading.Thread(target=self._read_udp, daemon=True),
                         threading.Thread(target=self._accept, daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/"

    @property
    def syslog_address(self) -> str:
        return f"127.0.0.1:{self.udp.getsockname()[1]}"

    @property
    def tcp_port(self) -> int:
        return int(self.tcp.getsockname()[1])

    def _read_udp(self) -> None:
        while not self._stop.is_set():
            try:
                self.udp.recv(65536)
                self.syslog_messages += 1
            except (TimeoutError, OSError):
                continue

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
                conn.close()
            except (TimeoutError, OSError):
                continue

    def close(self) -> None:
        self._stop.set()
        self.http.shutdown()
        self.http.server_close()
        self.udp.close()
        self.tcp.close()


def rss_slope_mb_per_10min(samples: list[SoakSample], warmup_s: float) -> float | None:
    """Least-squares slope of RSS after the warm-up, in MB per 10 minutes."""
    import numpy as np

    kept = [s for s in samples if s.t_s >= warmup_s]
    if len(kept) < 3:
        return None
    slope_per_s = float(np.polyfit([s.t_s for s in kept], [s.rss_mb for s in kept], 1)[0])
    return slope_per_s * 600.0


def run_soak(minutes: float, sample_s: float, execs: int, opens: int, connects: int,
             alerts: int, report: Report) -> list[SoakSample]:
    rules_file = report.outdir / "soak-rule.yaml"
    rules_file.write_text(MARKER_RULE)
    rx = _Receivers()
    agent = Agent.start(report.outdir / "agent", rules=[str(PACKAGED_RULES_DIR),
                                                        str(rules_file)],
                        store_alerts=True,
                        extra=["-o", f"http:{rx.webhook_url}",
                               "-o", f"syslog:{rx.syslog_address}"])
    samples: list[SoakSample] = []
    load: subprocess.Popen[bytes] | None = None
    try:
        watch = ProcWatch(agent.pid)
        load = subprocess.Popen([sys.executable, "-c", _LOAD, str(execs), str(opens),
                                 str(connects), str(alerts), str(rx.tcp_port), MARKER_DIR])
        start = time.monotonic()
        end = start + minutes * 60.0
        next_at = start + sample_s
        while time.monotonic() < end:
            time.sleep(max(0.0, min(next_at, end) - time.monotonic()))
            next_at += sample_s
            if load.poll() is not None:
                raise SyswardError(f"the load process exited ({load.returncode}).")
            cpu, rss = watch.tick()
            c = agent.counters()
            samples.append(SoakSample(round(time.monotonic() - start, 2), rss / 1e6, cpu,
                                      c.queue_depth, c.drops + c.output_dropped, c.matches))
    finally:
        if load is not None:
            load.kill()
            load.wait()
        agent.stop()
        rx.close()
    report.data["webhook_alerts"] = rx.webhook_alerts
    report.data["syslog_messages"] = rx.syslog_messages
    return samples


def summarize(samples: list[SoakSample], minutes: float, report: Report) -> None:
    table = Table("soak: the agent over time", ["t (s)", "RSS (MB)", "CPU (%)", "queue depth",
                                                "drops", "matches"])
    step = max(1, len(samples) // 30)  # the table shows at most ~30 rows; result.json all
    for s in samples[::step]:
        table.add(s.t_s, round(s.rss_mb, 2), round(s.cpu_pct, 1), s.queue_depth, s.drops,
                  s.matches)
    report.table(table)
    report.data["samples"] = [asdict(s) for s in samples]
    xs = [s.t_s / 60 for s in samples]
    report.plot("soak-rss.png", "agent RSS under a steady mixed load", "minutes", "MB",
                {"RSS": (xs, [s.rss_mb for s in samples])})
    report.plot("soak-cpu.png", "agent CPU under a steady mixed load", "minutes",
                "% of one core", {"CPU": (xs, [s.cpu_pct for s in samples])})
    report.plot("soak-queue.png", "raw queue depth", "minutes", "events",
                {"queue depth": (xs, [s.queue_depth for s in samples])})
    warmup = min(120.0, minutes * 60 * 0.2)  # seeding, caches and the first GCs settle
    slope = rss_slope_mb_per_10min(samples, warmup)
    report.data["rss_slope_mb_per_10min"] = slope
    report.data["warmup_s"] = warmup
    drops = samples[-1].drops if samples else 0.0
    matches = samples[-1].matches if samples else 0.0
    report.data["drops"] = drops
    if slope is None:
        report.say("RSS slope: too few samples after the warm-up to fit one")
    else:
        met = "met" if slope <= TARGET_SLOPE_MB_PER_10MIN else "MISSED"
        report.say(f"RSS slope after {warmup:.0f} s of warm-up: {slope:+.3f} MB per 10 min "
                   f"(target <= {TARGET_SLOPE_MB_PER_10MIN:g}: {met}); RSS "
                   f"{samples[0].rss_mb:.1f} -> {samples[-1].rss_mb:.1f} MB")
    cpu = [s.cpu_pct for s in samples]
    if cpu:
        report.say(f"CPU: mean {sum(cpu) / len(cpu):.1f} % of a core, max {max(cpu):.1f} %")
    report.say(f"matches {matches:.0f}, drops {drops:.0f} (target 0); webhook received "
               f"{report.data['webhook_alerts']}, syslog {report.data['syslog_messages']}")


@click.command(name="soak")
@click.option("--minutes", type=click.FloatRange(min=0.05), default=30.0, show_default=True,
              help="How long the load runs.")
@click.option("--sample-s", type=click.FloatRange(min=0.2), default=10.0, show_default=True,
              help="Seconds between samples.")
@click.option("--execs", type=click.IntRange(min=0, max=100), default=20, show_default=True,
              help="Process launches per second.")
@click.option("--opens", type=click.IntRange(min=0), default=2000, show_default=True,
              help="File opens per second.")
@click.option("--connects", type=click.IntRange(min=0, max=100), default=20,
              show_default=True, help="TCP connects per second.")
@click.option("--alerts", type=click.IntRange(min=0, max=100), default=10, show_default=True,
              help="Marker opens (one alert each) per second.")
@click.option("--out", type=click.Path(path_type=Path), default=None)
def soak_bench(minutes: float, sample_s: float, execs: int, opens: int, connects: int,
               alerts: int, out: Path | None) -> None:
    """The agent under a steady mixed load: RSS, CPU and queue depth over time, RSS slope."""
    report = Report("soak", out, bench_console())
    report.data.update(minutes=minutes, sample_s=sample_s, execs=execs, opens=opens,
                       connects=connects, alerts=alerts)
    samples = run_soak(minutes, sample_s, execs, opens, connects, alerts, report)
    summarize(samples, minutes, report)
    report.write()
