"""``sysward bench churn``: process churn against a real agent, and what it does to memory.

Workers (a small C loop, ``c/churn.c``) fork and exec ``/bin/true`` with a new command line
each time, from 1 and 2 workers, as fast as they can or at a given rate, for N minutes per
phase.  Each phase gets a fresh agent (the default rules, one alert a second from the bench
reading /etc/shadow so the rules keep working), sampled every second: RSS from /proc, and
from /metrics the process table's entries, exited entries, estimated bytes and evictions.

Reported per phase: execs done and seen, peak RSS, RSS growth over the last minute, the
table's largest size against its budget, evictions by cause, events lost; plots of RSS and
table size over time.  ``--baseline DIR`` runs each phase a second time, interleaved, with
the sysward of another source tree (``DIR/src``), to measure before and after on one machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from prometheus_client.parser import text_string_to_metric_families

from sysward.bench.agent import Agent
from sysward.bench.cbuild import build
from sysward.bench.procstats import cpu_percent, sample
from sysward.bench.report import Report, Table, bench_console
from sysward.errors import SyswardError

#: the environment the exec'd programs get: a login shell's worth (~1.5 KB), fixed so runs
#: compare
CHURN_ENV: dict[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root", "LANG": "C.UTF-8", "TERM": "xterm-256color", "SHELL": "/bin/bash",
    "USER": "root", "LOGNAME": "root", "PWD": "/tmp", "SHLVL": "2",
    "LS_COLORS": "rs=0:di=01;34:ln=01;36:mh=00:pi=40;33:so=01;35:do=01;35:bd=40;33;01:" * 4,
    **{f"BUILD_VAR_{i:02d}": f"/opt/toolchain/{i:02d}/lib:/opt/toolchain/{i:02d}/share"
       for i in range(16)},
}

#: the window over which RSS must stay flat at the end of a phase
FLAT_WINDOW_S = 60.0


@dataclass(slots=True)
class Point:
    t: float  # s since the phase started
    rss_mb: float
    entries: float
    exited: float
    table_mb: float | None  # None: the agent does not report it (an older build)


@dataclass
class Phase:
    label: str  # "current" or "baseline"
    workers: int
    rate: float  # execs/s over all workers, 0 = as fast as possible
    seconds: float
    execs: int = 0
    execs_per_s: float = 0.0
    agent_execs: float = 0.0
    idle_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    last_minute_growth_mb: float = 0.0
    max_entries: float = 0.0
    max_exited: float = 0.0
    max_table_mb: float | None = None
    budget_mb: float | None = None
    evictions: dict[str, float] = field(default_factory=dict)
    kernel_lost: float = 0.0
    queue_dropped: float = 0.0
    alerts: int = 0
    agent_cpu_pct: float = 0.0  # of one core, while the workers ran
    points: list[Point] = field(default_factory=list)

    @property
    def name(self) -> str:
        how = f"{self.rate:.0f}/s" if self.rate else "max"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''} {how} ({self.label})"


def scrape_all(listen: str) -> dict[str, float]:
    """Every sample of /metrics as ``name`` or ``name{k=v,...}`` -> value."""
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5.0) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name if not s.labels else (
                s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}")
            out[key] = float(s.value)
    return out


def evictions_of(m: dict[str, float]) -> dict[str, float]:
    """Evictions by cause, from this build's labelled counter or an older build's names."""
    out: dict[str, float] = {}
    for key, value in m.items():
        if key.startswith("sysward_enrich_evictions_total{cause="):
            out[key[len("sysward_enrich_evictions_total{cause="):-1]] = value
        elif key.startswith("sysward_enrich_evictions_") and key.endswith("_total"):
            out[key[len("sysward_enrich_evictions_"):-len("_total")]] = value
        elif key in ("sysward_enrich_evictions_total", "sysward_enrich_expired_total"):
            out[key[len("sysward_enrich_"):-len("_total")]] = value
    return out


class _Sampler(threading.Thread):
    """Every ``interval`` s: the agent's RSS and table figures; reads /etc/shadow (one alert
    per sample from the default rules) to show detection still works under churn."""

    def __init__(self, agent: Agent, interval: float) -> None:
        super().__init__(daemon=True)
        self.agent, self.interval = agent, interval
        self.points: list[Point] = []
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                rss = sample(self.agent.pid).rss_bytes / 2**20
                m = scrape_all(self.agent.listen)
            except (ProcessLookupError, OSError):
                return
            table = m.get("sysward_enrich_table_bytes")
            self.points.append(Point(
                time.monotonic() - self._t0, rss, m.get("sysward_enrich_processes", 0.0),
                m.get("sysward_enrich_processes_exited", 0.0),
                None if table is None else table / 2**20))
            try:
                with open("/etc/shadow", "rb") as f:
                    f.read(1)
            except OSError:
                pass

    def stop(self) -> None:
        self._halt.set()
        self.join(5.0)


def _alerts(store: Path) -> int:
    try:
        with open(store, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def _machine() -> dict[str, Any]:
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        pid_max = 0
    return {"cpus": os.cpu_count(), "pid_max": pid_max, "loadavg_start": os.getloadavg()[0]}


def run_phase(phase: Phase, workdir: Path, program: Sequence[str] | None,
              extra: Sequence[str], rules: Sequence[str], interval: float) -> Phase:
    exe = build("churn")
    env = dict(CHURN_ENV)
    with Agent.start(workdir, rules=rules, extra=extra, program=program) as agent:
        time.sleep(2.0)
        phase.idle_rss_mb = sample(agent.pid).rss_bytes / 2**20
        m0 = scrape_all(agent.listen)
        c0 = agent.counters()
        sampler = _Sampler(agent, interval)
        cpu0 = sample(agent.pid)
        sampler.start()
        per = phase.rate / phase.workers if phase.rate else 0.0
        procs = [subprocess.Popen([str(exe), f"{phase.seconds:.1f}", f"{per:.2f}", f"w{i}"],
                                  stdout=subprocess.PIPE, text=True, env=env, cwd="/tmp")
                 for i in range(phase.workers)]
        busy_ns = 0
        for p in procs:
            out, _ = p.communicate()
            if p.returncode != 0:
                raise SyswardError(f"a churn worker failed (status {p.returncode}); see "
                                   "its message above.")
            n, ns = out.split()
            phase.execs += int(n)
            busy_ns = max(busy_ns, int(ns))
        phase.agent_cpu_pct = cpu_percent(cpu0, sample(agent.pid))
        # let the agent catch up with what is queued before the last figures
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and agent.counters().queue_depth > 0:
            time.sleep(0.2)
        sampler.stop()
        m1 = scrape_all(agent.listen)
        c1 = agent.counters()
        phase.alerts = _alerts(agent.store)
    phase.points = sampler.points
    phase.execs_per_s = phase.execs / (busy_ns / 1e9) if busy_ns else 0.0
    phase.agent_execs = (m1.get("sysward_enrich_execs_total", 0.0)
                         - m0.get("sysward_enrich_execs_total", 0.0))
    pts = phase.points
    phase.peak_rss_mb = max([p.rss_mb for p in pts] + [phase.idle_rss_mb])
    if pts:
        end = pts[-1]
        start = min(pts, key=lambda p: abs(p.t - (end.t - FLAT_WINDOW_S)))
        phase.last_minute_growth_mb = end.rss_mb - start.rss_mb
        phase.max_entries = max(p.entries for p in pts)
        phase.max_exited = max(p.exited for p in pts)
        sizes = [p.table_mb for p in pts if p.table_mb is not None]
        phase.max_table_mb = max(sizes) if sizes else None
    budget = m1.get("sysward_enrich_table_max_bytes")
    phase.budget_mb = None if budget is None else budget / 2**20
    phase.evictions = evictions_of(m1)
    phase.kernel_lost = c1.lost - c0.lost
    phase.queue_dropped = c1.queue_dropped - c0.queue_dropped
    return phase


def _point_dict(pt: Point) -> dict[str, float | None]:
    return {"t": pt.t, "rss_mb": pt.rss_mb, "entries": pt.entries, "exited": pt.exited,
            "table_mb": pt.table_mb}


def _table_series(p: Phase) -> tuple[list[float], list[float]]:
    pts = [(pt.t, pt.table_mb) for pt in p.points if pt.table_mb is not None]
    return [t for t, _ in pts], [mb for _, mb in pts]


def phase_table(phases: list[Phase]) -> Table:
    t = Table("churn: agent memory under process churn",
              ["phase", "execs/s", "execs seen", "agent CPU %", "idle RSS MB", "peak RSS MB",
               "last-min growth MB", "max entries", "max exited", "max table MB",
               "budget MB", "evictions", "lost", "alerts"])
    for p in phases:
        ev = ", ".join(f"{k}={v:,.0f}" for k, v in sorted(p.evictions.items()) if v) or "0"
        t.add(p.name, p.execs_per_s, p.agent_execs, p.agent_cpu_pct, p.idle_rss_mb,
              p.peak_rss_mb,
              p.last_minute_growth_mb, p.max_entries, p.max_exited, p.max_table_mb,
              p.budget_mb, ev, p.kernel_lost + p.queue_dropped, p.alerts)
    t.note = ("execs seen: execs the agent's process table applied; agent CPU: 100 % = one "
              "core, while the workers ran; last-min growth: RSS at "
              "the end minus RSS a minute before; table MB: the table's own estimate "
              "(an older build reports none); lost: kernel ring buffer + queues.")
    return t


@click.command(name="churn")
@click.option("--minutes", type=float, default=3.0, show_default=True,
              help="Length of each phase.")
@click.option("--workers", "workers", type=int, multiple=True,
              help="Worker counts, one phase each (default: 1 and 2).")
@click.option("--rate", type=float, default=0.0, show_default=True,
              help="Execs per second over all workers; 0 = as fast as they can.")
@click.option("--baseline", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Source tree of another sysward (DIR/src) run interleaved with this one.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Config override for this build's agent (e.g. process_table.max_mb=16).")
@click.option("--rules", multiple=True, metavar="FILE|DIR",
              help="Rules of the agent (default: sysward's own).")
@click.option("--interval", type=float, default=1.0, show_default=True,
              help="Seconds between samples.")
@click.option("--out", type=click.Path(path_type=Path), default=None)
def churn_bench(minutes: float, workers: tuple[int, ...], rate: float, baseline: Path | None,
                sets: tuple[str, ...], rules: tuple[str, ...], interval: float,
                out: Path | None) -> None:
    """Fork+exec as fast as possible (or at --rate) and follow the agent's memory."""
    counts = workers or (1, 2)
    if minutes <= 0 or any(w < 1 for w in counts) or rate < 0 or interval <= 0:
        raise SyswardError("--minutes and --interval must be positive, --workers at least 1, "
                           "--rate 0 or more.")
    base_program: list[str] | None = None
    if baseline is not None:
        if not (baseline / "src" / "sysward" / "__init__.py").exists():
            raise SyswardError(f"{baseline} is not a sysward source tree (no src/sysward); "
                               "give the directory that holds src/.")
        base_program = ["env", f"PYTHONPATH={(baseline / 'src').resolve()}", sys.executable,
                        "-m", "sysward"]
    report = Report("churn", out, bench_console())
    machine = _machine()
    extra = [a for s in sets for a in ("--set", s)]
    phases: list[Phase] = []
    for n in counts:
        runs: list[tuple[str, Sequence[str] | None, Sequence[str]]] = [("current", None, extra)]
        if base_program is not None:
            runs.insert(0, ("baseline", base_program, ()))
        for label, program, args in runs:
            phase = Phase(label, n, rate, minutes * 60)
            report.console.print(f"phase: {phase.name}, {minutes:g} min ...")
            run_phase(phase, report.outdir / f"agent-{label}-{n}", program, args, rules,
                      interval)
            phases.append(phase)
            report.say(
                f"{phase.name}: {phase.execs_per_s:,.0f} execs/s, agent CPU "
                f"{phase.agent_cpu_pct:.0f} %, peak RSS "
                f"{phase.peak_rss_mb:.1f} MB (idle {phase.idle_rss_mb:.1f}), last-minute "
                f"growth {phase.last_minute_growth_mb:+.1f} MB, table max "
                + (f"{phase.max_table_mb:.1f} of {phase.budget_mb:.0f} MB"
                   if phase.max_table_mb is not None and phase.budget_mb else "n/a")
                + f", {phase.max_entries:,.0f} entries max")
    report.table(phase_table(phases))
    machine["loadavg_end"] = os.getloadavg()[0]
    report.say(f"machine: {machine['cpus']} CPUs, pid_max {machine['pid_max']} (pids are "
               f"reused after that many processes), load average {machine['loadavg_start']:.1f}"
               f" at the start, {machine['loadavg_end']:.1f} at the end")
    report.data["phases"] = [
        {k: v for k, v in vars(p).items() if k != "points"}
        | {"name": p.name, "points": [_point_dict(pt) for pt in p.points]}
        for p in phases]
    report.data["machine"] = machine
    report.plot("rss_over_time.png", "Agent RSS under process churn", "s", "RSS MB",
                {p.name: ([pt.t for pt in p.points], [pt.rss_mb for pt in p.points])
                 for p in phases}, marker="")
    report.plot("table_over_time.png", "Process table size (its own estimate)", "s", "MB",
                {p.name: _table_series(p) for p in phases}, marker="")
    report.plot("entries_over_time.png", "Process table entries", "s", "entries",
                {p.name: ([pt.t for pt in p.points], [pt.entries for pt in p.points])
                 for p in phases}, marker="")
    report.write()
