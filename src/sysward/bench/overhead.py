"""``sysward bench overhead``: what monitoring costs the monitored workload.

Side by side in one run, each workload under each configuration:

- configurations: no agent; sysward with its default rules (the kernel prefilter on, the
  default); the same with ``kernel.prefilter: false``; sysward in kernel-filter-only
  mode (the default rules' programs attached, every host event dropped by the in-kernel
  filter ``filters.containers_only``: what the hooks cost with nothing reaching user space);
  auditd watching the same syscalls (when auditd is installed).
- workloads: ns per call of setuid (monitored) and getpid (never hooked) in a C loop; an
  exec-heavy shell loop; a file-heavy tree copy loop; a loopback TCP request loop.

Each cell is the median of ``--repeat`` runs, the configurations taking turns round by round;
ratios are to the no-agent run.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn

from sysward.bench.agent import Agent
from sysward.bench.cbuild import build
from sysward.bench.report import Report, Table, bench_console
from sysward.errors import SyswardError

TARGET_OVERHEAD_PCT = 5.0

_NET_LOOP = r"""
import socket, sys, threading
n = int(sys.argv[1])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64)
port = srv.getsockname()[1]
def serve():
    for _ in range(n):
        c, _ = srv.accept(); c.sendall(c.recv(64)); c.close()
t = threading.Thread(target=serve); t.start()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"ping"); s.recv(64); s.close()
t.join()
"""


def _timed(argv: list[str], cwd: Path | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


class Workloads:
    def __init__(self, tmp: Path, scale: float) -> None:
        self.tmp = tmp
        self.nscall = build("nscall")
        self.calls = max(10_000, int(1_000_000 * scale))
        self.execs = max(50, int(1000 * scale))
        self.copies = max(2, int(20 * scale))
        self.requests = max(50, int(2000 * scale))
        src = tmp / "tree"
        for d in range(10):
            (src / f"d{d}").mkdir(parents=True, exist_ok=True)
            for f in range(20):
                (src / f"d{d}" / f"f{f}.c").write_bytes(b"int x;\n" * 200)

    def all(self) -> dict[str, Callable[[], float]]:
        return {
            "setuid ns/call (monitored)": lambda: self._ns("setuid"),
            "getpid ns/call (not hooked)": lambda: self._ns("getpid"),
            f"exec loop: {self.execs} x /bin/true, s": lambda: _timed(
                ["sh", "-c", f"i=0; while [ $i -lt {self.execs} ]; do /bin/true; "
                 "i=$((i+1)); done"]),
            f"file loop: {self.copies} x cp -r of 200 files, s": lambda: _timed(
                ["sh", "-c", f"i=0; while [ $i -lt {self.copies} ]; do cp -r tree copy && "
                 "rm -rf copy; i=$((i+1)); done"], cwd=self.tmp),
            f"net loop: {self.requests} loopback TCP requests, s": lambda: _timed(
                [sys.executable, "-c", _NET_LOOP, str(self.requests)]),
        }

    def _ns(self, name: str) -> float:
        out = subprocess.run([str(self.nscall), name, str(self.calls)], check=True,
                             capture_output=True, text=True).stdout
        return float(out)


def _audit_rules(types: list[str]) -> list[list[str]]:
    """auditctl rules watching the syscalls sysward hooks (those auditd knows)."""
    syscalls = [t for t in types if t not in ("procexit", "bpf")] + ["bpf"]
    rules = []
    for i in range(0, len(syscalls), 10):
        rule = ["-a", "always,exit", "-F", "arch=b64"]
        for sc in syscalls[i:i + 10]:
            rule += ["-S", sc]
        rule += ["-k", "sysward-bench"]
        rules.append(rule)
    return rules


@contextlib.contextmanager
def auditd_running(types: list[str]) -> Iterator[str | None]:
    """auditd with rules for our syscalls; yields None when it cannot run, else a note."""
    if shutil.which("auditd") is None or shutil.which("auditctl") is None:
        yield "auditd is not installed (apt-get install auditd)"
        return
    status = subprocess.run(["auditctl", "-s"], capture_output=True, text=True).stdout
    was_enabled = "enabled 1" in status or "enabled 2" in status
    started = subprocess.Popen(["auditd", "-n"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    if started.poll() is not None:
        if not was_enabled:
            subprocess.run(["auditctl", "-e", "0"], capture_output=True)
        yield f"auditd exited at start (status {started.returncode})"
        return
    try:
        added = 0
        for rule in _audit_rules(types):
            # auditctl refuses a whole rule for one syscall name it does not know: retry the
            # syscalls one by one then
            if subprocess.run(["auditctl", *rule], capture_output=True).returncode == 0:
                added += 1
                continue
            for i, tok in enumerate(rule):
                if tok == "-S":
                    one = ["-a", "always,exit", "-F", "arch=b64", "-S", rule[i + 1], "-k",
                           "sysward-bench"]
                    added += subprocess.run(["auditctl", *one],
                                            capture_output=True).returncode == 0
        yield None if added else "auditctl accepted no rule"
    finally:
        subprocess.run(["auditctl", "-D", "-k", "sysward-bench"], capture_output=True)
        started.terminate()
        try:
            started.wait(10)
        except subprocess.TimeoutExpired:
            started.kill()
        if not was_enabled:  # leave the kernel's audit switch as we found it
            subprocess.run(["auditctl", "-e", "0"], capture_output=True)


def _count_passed(before: Any, after: Any, into: dict[str, list[float]]) -> None:
    """Add the seen / submitted deltas per event type to ``into``."""
    for t, v in after.per_type_seen.items():
        acc = into.setdefault(t, [0.0, 0.0])
        acc[0] += v - before.per_type_seen.get(t, 0.0)
        acc[1] += after.per_type_submitted.get(t, 0.0) - before.per_type_submitted.get(t, 0.0)


def measure_once(workloads: Workloads, into: dict[str, list[float]]) -> None:
    for name, fn in workloads.all().items():
        into.setdefault(name, []).append(fn())


@click.command(name="overhead")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Size of the workloads (0.05 for a quick look).")
@click.option("--repeat", type=int, default=3, show_default=True,
              help="Runs per cell; the median is reported.")
@click.option("--no-auditd", is_flag=True, help="Leave auditd out.")
@click.option("--out", type=click.Path(path_type=Path), default=None)
def overhead_bench(scale: float, repeat: int, no_auditd: bool, out: Path | None) -> None:
    """Workload cost with no agent, sysward, sysward kernel-filter-only and auditd."""
    if scale <= 0 or repeat < 1:
        raise SyswardError("--scale must be > 0 and --repeat >= 1.")
    report = Report("overhead", out, bench_console())
    results: dict[str, dict[str, float]] = {}
    notes: dict[str, str] = {}
    configs = ["no agent", "sysward (default rules)", "sysward (prefilter off)",
               "sysward (kernel filter only)", "auditd (same syscalls)"]
    passed: dict[str, dict[str, list[float]]] = {c: {} for c in configs[1:3]}
    samples: dict[str, dict[str, list[float]]] = {c: {} for c in configs}
    # The configurations take turns round by round: a machine drifts (page cache, dentries,
    # a neighbour VM) by more than the effect measured, and one configuration measured
    # after another would carry that drift as overhead.
    with tempfile.TemporaryDirectory(prefix="sysward-overhead-") as tmp_s:
        tmp = Path(tmp_s)
        wl = Workloads(tmp, scale)
        types: list[str] = []
        with Progress(TextColumn("{task.description}"), BarColumn(),
                      console=report.console, transient=True) as progress:
            task = progress.add_task("overhead", total=repeat * len(configs))
            for r in range(repeat):
                for c in configs:
                    progress.update(task, description=f"round {r + 1}/{repeat}: {c}")
                    if c == "no agent":
                        measure_once(wl, samples[c])
                    elif c in (configs[1], configs[2]):
                        extra = [] if c == configs[1] else ["--set", "kernel.prefilter=false"]
                        with Agent.start(tmp / f"agent-{configs.index(c)}-{r}",
                                         extra=extra) as agent:
                            before = agent.counters()
                            types = types or sorted(before.per_type_seen)
                            measure_once(wl, samples[c])
                            _count_passed(before, agent.counters(), passed[c])
                    elif c == configs[3]:
                        with Agent.start(tmp / f"agent-kernel-only-{r}",
                                         extra=["--set", "filters.containers_only=true"]):
                            measure_once(wl, samples[c])
                    elif no_auditd:
                        notes[c] = "left out (--no-auditd)"
                    else:
                        with auditd_running(types) as why:
                            if why is None:
                                measure_once(wl, samples[c])
                            else:
                                notes[c] = why
                    progress.advance(task)
    for c, per_workload in samples.items():
        if per_workload:
            results[c] = {w: statistics.median(xs) for w, xs in per_workload.items()}
    base = results["no agent"]
    t = Table(f"overhead (median of {repeat} runs; ratio to no agent)",
              ["workload"] + [c for c in configs if c in results])
    for w in base:
        row: list[Any] = [w]
        for c in configs:
            if c in results:
                v = results[c][w]
                row.append(f"{v:.4g}" + ("" if c == "no agent" else f" ({v / base[w]:.2f}x)"))
        t.add(*row)
    t.note = "; ".join(f"{c}: {n}" for c, n in notes.items())
    report.table(t)
    report.data.update(results=results, notes=notes, scale=scale, repeat=repeat)
    realistic = [w for w in base if w.endswith(", s")]
    for c in configs[1:]:
        if c not in results:
            continue
        worst = max(100.0 * (results[c][w] / base[w] - 1.0) for w in realistic)
        report.say(f"{c}: worst overhead on the realistic workloads {worst:+.1f} % "
                   f"(target <= {TARGET_OVERHEAD_PCT:.0f} % for sysward)")
    share = Table("share of the hooked events the kernel passed to user space, per type "
                  "(all workloads, all rounds)", ["type", *passed])
    for et in sorted({t for p in passed.values() for t in p}):
        cells: list[Any] = [et]
        for c in passed:
            seen, sub = passed[c].get(et, [0.0, 0.0])
            cells.append(f"{100 * sub / seen:.1f} % of {seen:,.0f}" if seen else "-")
        share.add(*cells)
    report.table(share)
    report.data.update(passed=passed)
    report.plot("overhead.png", "Workload time relative to no agent", "workload #",
                "ratio", {c: (list(range(1, len(base) + 1)),
                              [results[c][w] / base[w] for w in base])
                          for c in configs if c in results})
    report.write()
