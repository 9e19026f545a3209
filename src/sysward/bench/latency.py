"""``sysward bench latency``: time from a syscall to its alert being written, under load.

A load process issues opens at a steady rate; one in every ``rate / markers`` of them opens a
marker path that a rule added to the default rules fires on, after noting the wall-clock time
just before the call.  The bench tails the agent's JSON lines alert file and notes when each
marker's alert line appears; latency = appearance - call.  The agent's own timestamps are not
used, so the figure includes every stage: kernel, ring buffer drain, decode, enrichment, rules,
the output queue and the write.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import click
import orjson

from sysward.agent.engine import DEFAULT_RULES_DIR
from sysward.bench.agent import Agent
from sysward.bench.report import Report, Table, bench_console
from sysward.errors import SyswardError

TARGET_P99_MS = 10.0
MARKER_DIR = "/tmp/sysward-latency-marker"
MARKER_RULE = f"""
- rule: Latency Bench Marker
  desc: fires on the marker opens of sysward bench latency
  condition: evt.type in (open, openat, openat2) and fd.name startswith {MARKER_DIR}/
  output: latency marker (file=%fd.name)
  priority: NOTICE
"""

# The load: `rate` opens a second in 1 ms ticks, every `every`-th one a marker; prints the
# call times of the markers as JSON when done.
_LOAD = textwrap.dedent("""
    import json, os, sys, time
    rate, every, duration = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    marker_dir = sys.argv[4]
    per_tick = max(1, rate // 1000)
    sent = {}
    n = 0
    start = time.monotonic()
    tick = start
    while time.monotonic() - start < duration:
        for _ in range(per_tick):
            n += 1
            if n % every == 0:
                path = f"{marker_dir}/{n}"
                sent[path] = time.time_ns()
                try:
                    os.close(os.open(path, os.O_RDONLY))
                except OSError:
                    pass
            else:
                os.close(os.open("/dev/null", os.O_RDONLY))
        tick += 0.001
        delay = tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    json.dump({"opens": n, "elapsed": time.monotonic() - start, "sent": sent}, sys.stdout)
""")


def _percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def measure(agent: Agent, rate: int, markers: int, duration: float) -> dict[str, object]:
    """Run the load against ``agent`` and return the latencies of the marker alerts."""
    every = max(1, rate // max(1, markers))
    seen: dict[str, int] = {}
    alerts = Path(agent.store)
    offset = alerts.stat().st_size if alerts.exists() else 0
    load = subprocess.Popen([sys.executable, "-c", _LOAD, str(rate), str(every), str(duration),
                             MARKER_DIR], stdout=subprocess.PIPE)
    deadline = time.monotonic() + duration + 3.0
    buf = b""
    while time.monotonic() < deadline:
        try:
            with open(alerts, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        now = time.time_ns()
        if chunk:
            offset += len(chunk)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if b"Latency Bench Marker" not in line:
                    continue
                name = orjson.loads(line).get("output_fields", {}).get("fd.name")
                if isinstance(name, str):
                    seen.setdefault(name, now)
        time.sleep(0.0005)
    out, _ = load.communicate(timeout=30)
    result = json.loads(out)
    sent: dict[str, int] = result["sent"]
    lat = [(seen[p] - t) / 1e6 for p, t in sent.items() if p in seen]
    return {
        "rate_requested": rate,
        "opens_per_s": result["opens"] / result["elapsed"],
        "markers": len(sent),
        "alerts_seen": len(lat),
        "p50_ms": _percentile(lat, 0.50),
        "p90_ms": _percentile(lat, 0.90),
        "p99_ms": _percentile(lat, 0.99),
        "max_ms": max(lat) if lat else float("nan"),
        "latencies_ms": lat,
    }


@click.command(name="latency")
@click.option("--rate", type=int, default=10_000, show_default=True,
              help="Opens per second issued while measuring (the event load).")
@click.option("--markers", type=int, default=100, show_default=True,
              help="Marker opens per second among them (each one must raise an alert).")
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds.")
@click.option("--drain-ms", type=int, default=None,
              help="The agent's kernel.drain_interval_ms (default: the agent's default).")
@click.option("--out", type=click.Path(path_type=Path), default=None)
def latency_bench(rate: int, markers: int, duration: float, drain_ms: int | None,
                  out: Path | None) -> None:
    """Detection latency, syscall to alert written, at a steady event rate."""
    if rate < 1000 or markers < 1 or duration <= 0:
        raise SyswardError("--rate must be at least 1000, --markers and --duration positive.")
    report = Report("latency", out, bench_console())
    rules_file = report.outdir / "marker.yaml"
    rules_file.write_text(MARKER_RULE)
    extra = ["--set", f"kernel.drain_interval_ms={drain_ms}"] if drain_ms else []
    with Agent.start(report.outdir / "agent", rules=[str(DEFAULT_RULES_DIR), str(rules_file)],
                     extra=extra) as agent:
        time.sleep(1.0)
        r = measure(agent, rate, markers, duration)
        counters = agent.counters()
    lat = r.pop("latencies_ms")
    assert isinstance(lat, list)
    t = Table("detection latency (syscall -> alert line written), default rules + marker",
              ["measure", "value"])
    t.rows = [
        ["event load (opens/s)", f"{r['opens_per_s']:,.0f}"],
        ["marker alerts expected / seen", f"{r['markers']:,} / {r['alerts_seen']:,}"],
        ["p50 ms", f"{r['p50_ms']:.2f}"],
        ["p90 ms", f"{r['p90_ms']:.2f}"],
        ["p99 ms", f"{r['p99_ms']:.2f}"],
        ["max ms", f"{r['max_ms']:.2f}"],
        ["kernel lost / queue dropped", f"{counters.lost:,.0f} / {counters.queue_dropped:,.0f}"],
    ]
    report.table(t)
    report.data.update(result=r, latencies_ms=lat)
    p99 = float(r["p99_ms"])  # type: ignore[arg-type]
    met = p99 <= TARGET_P99_MS and r["alerts_seen"] == r["markers"]
    report.say(f"p99 {p99:.2f} ms at {r['opens_per_s']:,.0f} events/s; target p99 <= "
               f"{TARGET_P99_MS:g} ms at 10,000 events/s with every alert: "
               + ("met" if met else "missed"))
    xs = sorted(lat)
    report.plot("latency_cdf.png", "Detection latency (CDF)", "ms", "fraction",
                {"sysward": (xs, [(i + 1) / len(xs) for i in range(len(xs))])}, marker="")
    report.write()
