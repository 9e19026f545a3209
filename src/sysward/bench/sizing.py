"""``sysward bench sizing``: the Falco study's sizing table for sysward.

The agent runs in a cgroup with a CPU quota (0.5, 1 and 2 CPUs by default) and a memory
limit; for each quota the event-generator loop (the study's three actions unless told
otherwise) finds the highest action rate (EPS) and hooked-syscall rate before the first lost
detection.  cgroup v2 is used when its hierarchy has the cpu controller; otherwise the v1
cpu and memory controllers (/sys/fs/cgroup/cpu, /sys/fs/cgroup/memory).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from sysward.bench import actions as act
from sysward.bench.agent import Agent
from sysward.bench.detections import AlertFeed
from sysward.bench.generate import run_generate
from sysward.bench.report import Report, Table, bench_console
from sysward.enrich.containers import find_cgroup2_mount
from sysward.errors import SyswardError

PERIOD_US = 100_000


class QuotaCgroup:
    """A cgroup (v2, or v1 cpu + memory) with a CPU quota and a memory limit."""

    def __init__(self, name: str, cpus: float, mem_bytes: int) -> None:
        self.dirs: list[Path] = []
        v2 = find_cgroup2_mount()
        if v2 and "cpu" in (Path(v2) / "cgroup.controllers").read_text().split():
            d = Path(v2) / name
            d.mkdir(exist_ok=True)
            (d / "cpu.max").write_text(f"{int(cpus * PERIOD_US)} {PERIOD_US}")
            with contextlib.suppress(OSError):
                (d / "memory.max").write_text(str(mem_bytes))
            self.dirs = [d]
            self.kind = "v2"
            return
        cpu_root, mem_root = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/memory")
        if not (cpu_root / "cpu.cfs_quota_us").exists():
            raise SyswardError("no cgroup cpu controller (v2 cpu.max or v1 "
                               "/sys/fs/cgroup/cpu); mount one to run the sizing bench.")
        cpu = cpu_root / name
        cpu.mkdir(exist_ok=True)
        (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(int(cpus * PERIOD_US)))
        self.dirs = [cpu]
        if (mem_root / "memory.limit_in_bytes").exists():
            mem = mem_root / name
            mem.mkdir(exist_ok=True)
            (mem / "memory.limit_in_bytes").write_text(str(mem_bytes))
            self.dirs.append(mem)
        self.kind = "v1"

    def join(self) -> None:
        """In the agent's child before exec."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def throttled(self) -> int:
        """Periods in which the quota ran out (cpu.stat nr_throttled)."""
        for line in (self.dirs[0] / "cpu.stat").read_text().splitlines():
            if line.startswith("nr_throttled"):
                return int(line.split()[1])
        return 0

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


@contextlib.contextmanager
def quota(cpus: float, mem_mb: int) -> Iterator[QuotaCgroup]:
    cg = QuotaCgroup(f"sysward-bench-sizing-{os.getpid()}-{cpus:g}", cpus, mem_mb * 2**20)
    try:
        yield cg
    finally:
        cg.remove()


@click.command(name="sizing")
@click.option("--cpus", "cpu_list", default="0.5,1,2", show_default=True,
              help="Comma-separated CPU quotas.")
@click.option("--memory-mb", type=int, default=512, show_default=True,
              help="Memory limit of the agent's cgroup.")
@click.option("--actions", "pattern", default=None,
              help="Action regex (default: the Falco study's three actions).")
@click.option("--sleep", type=float, default=0.001, show_default=True,
              help="Pause between actions in the first round, s.")
@click.option("--round-duration", type=float, default=3.0, show_default=True)
@click.option("--max-rounds", type=int, default=20, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None)
def sizing_bench(cpu_list: str, memory_mb: int, pattern: str | None, sleep: float,
                 round_duration: float, max_rounds: int, out: Path | None) -> None:
    """Highest loss-free rate of the agent under CPU quotas (the Falco sizing table)."""
    try:
        cpus = [float(c) for c in cpu_list.split(",") if c.strip()]
    except ValueError:
        raise SyswardError(f"--cpus {cpu_list!r}: give numbers like 0.5,1,2.") from None
    if not cpus or any(c <= 0 for c in cpus):
        raise SyswardError("--cpus needs positive CPU counts, e.g. 0.5,1,2.")
    chosen = act.select(pattern) if pattern else act.resolve(act.FALCO_STUDY)
    report = Report("sizing", out, bench_console())
    table = Table("sizing: highest rate before the first lost detection",
                  ["CPU quota", "memory limit MB", "max loss-free EPS", "hooked syscalls/s",
                   "agent CPU %", "agent RSS MB", "first lossy EPS", "throttled periods"])
    rows = []
    for c in cpus:
        report.console.rule(f"agent limited to {c:g} CPU, {memory_mb} MB")
        with quota(c, memory_mb) as cg:
            agent = Agent.start(report.outdir / f"agent-{c:g}", preexec=cg.join)
            feed = AlertFeed(agent.store)
            try:
                rounds = run_generate(chosen, loop=True, sleep=sleep,
                                      round_duration=round_duration, delay=1.0,
                                      workers_per_place=1, agent=agent, feed=feed,
                                      report=report, max_rounds=max_rounds)
            finally:
                feed.close()
                agent.stop()
            throttled = cg.throttled()
        ok = [r for r in rounds if r.lost == 0 and r.expected > 0]
        bad = [r for r in rounds if r.lost > 0]
        best = max(ok, key=lambda r: r.eps) if ok else None
        row: dict[str, Any] = {"cpus": c, "memory_mb": memory_mb, "cgroup": cg.kind,
               "max_eps": best.eps if best else None,
               "syscalls_per_s": best.syscalls_per_s if best else None,
               "agent_cpu_pct": best.agent_cpu_pct if best else None,
               "agent_rss_mb": best.agent_rss_mb if best else None,
               "first_lossy_eps": bad[0].eps if bad else None, "throttled": throttled,
               "rounds": [r.eps for r in rounds]}
        rows.append(row)
        table.add(f"{c:g}", memory_mb, row["max_eps"], row["syscalls_per_s"],
                  row["agent_cpu_pct"], row["agent_rss_mb"], row["first_lossy_eps"], throttled)
    report.table(table)
    report.data["sizing"] = rows
    report.data["actions"] = [a.name for a in chosen]
    report.plot("eps_vs_cpu.png", "Max loss-free EPS vs CPU quota", "CPUs", "actions/s",
                {"sysward": ([r["cpus"] for r in rows], [r["max_eps"] or 0 for r in rows])})
    report.write()
