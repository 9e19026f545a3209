"""``sysward bench enforce``: what enforcement costs the hooked syscalls, and how final a kill is.

1. Overhead: ns per call of ``openat`` (kill-on-open hooks), ``setuid`` (kill-at-entry hook)
   and UDP ``connect`` (cgroup connect4 hook) in tight C loops, without the enforcement unit
   and with it loaded with rules that never match these calls -- the price every process pays
   for each enforced hook class: a config lookup, the field lookups, and for open a walk of
   the opened file's path.
2. Kill finality: programs with no C runtime whose *first instructions* are the syscall under
   test (bench/c/enf_first.c).  For exec, the program's first action is writing a marker to
   stdout; for open, it opens a canary, reads it and writes what it read.  Each runs first
   without enforcement (the marker / canary text shows: the probe works), then ``trials``
   times under a kill rule: a marker or canary byte in any output would mean the killed
   process ran an instruction of its own after the hook.  The kill latency is the time from
   the kernel's report (taken at the hook, just before bpf_send_signal) to the parent's
   waitpid() seeing the SIGKILL death.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson

from sysward.bench import cbuild
from sysward.errors import SyswardError


@dataclass(slots=True)
class Overhead:
    syscall: str
    hook: str
    base_ns: float
    enforced_ns: float
    prog_ns: float = 0.0  # the kernel's own average run time of the hook program

    @property
    def delta_ns(self) -> float:
        return self.enforced_ns - self.base_ns


@dataclass(slots=True)
class KillProbe:
    what: str
    control_output_seen: bool  # without enforcement the probe's output appears
    trials: int
    killed: int  # died by SIGKILL
    outputs_seen: int  # trials whose output showed the marker / canary: must be 0
    latency_us: list[float] = field(default_factory=list)

    def pct(self, q: float) -> float:
        if not self.latency_us:
            return 0.0
        xs = sorted(self.latency_us)
        return xs[min(len(xs) - 1, int(q * len(xs)))]


@dataclass(slots=True)
class EnforceBenchResult:
    overhead: list[Overhead]
    probes: list[KillProbe]

    def to_json(self) -> dict[str, Any]:
        return {
            "overhead": [dict(asdict(o), delta_ns=o.delta_ns) for o in self.overhead],
            "probes": [dict(asdict(p), p50_us=p.pct(0.5), p99_us=p.pct(0.99),
                            latency_us=None) for p in self.probes],
        }


def _build_first(workdir: Path, mode: str, canary: Path | None = None) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise SyswardError("the enforce benchmark compiles small C probes and needs a C "
                           "compiler; install gcc or clang.")
    out = workdir / f"probe-{mode.lower()}-{uuid.uuid4().hex[:6]}"
    args = [cc, "-O2", "-static", "-nostdlib", "-fno-stack-protector", "-fno-pie", "-no-pie",
            f"-DFIRST_{mode}", "-o", str(out), str(cbuild.SRC_DIR / "enf_first.c")]
    if canary is not None:
        args.insert(1, f'-DCANARY="{canary}"')
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SyswardError(f"compiling enf_first.c failed: {proc.stderr.strip()[:300]}")
    return out


def _median_ns(cmd: list[str], reps: int) -> float:
    vals = []
    for _ in range(reps):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        vals.append(float(out))
    return statistics.median(vals)


def _prog_ns(enf: Any, runs: list[tuple[str, list[str]]]) -> dict[str, float]:
    """Average in-kernel run time of each program over one more loop, from the kernel's BPF
    run statistics (switched on only for this run: they add two clock reads per run)."""
    knob = Path("/proc/sys/kernel/bpf_stats_enabled")
    try:
        old = knob.read_text().strip()
        knob.write_text("1")
    except OSError:
        return {}
    out: dict[str, float] = {}
    try:
        for prog, cmd in runs:
            subprocess.run(cmd, capture_output=True, check=True)
            pid = enf._obj.program(prog).id  # noqa: SLF001 - the bench reads its own unit
            info = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(pid)],
                                  capture_output=True, text=True, check=False).stdout
            try:
                d = orjson.loads(info)
                out[prog] = float(d["run_time_ns"]) / float(d["run_cnt"])
            except (ValueError, KeyError, ZeroDivisionError, TypeError):
                pass
    finally:
        knob.write_text(old)
    return out


def _rules_yaml(specs: list[tuple[str, str, str]]) -> str:
    return "".join(f"- rule: {n}\n  desc: bench\n  condition: {c}\n  output: '{n}'\n"
                   f"  priority: WARNING\n  action: {a}\n" for n, c, a in specs)


def _enforcer(specs: list[tuple[str, str, str]], cgroup: str | None) -> Any:
    from sysward.config import EnforceConfig
    from sysward.enforce import Enforcer
    from sysward.rules import load_rules_text

    res = load_rules_text(_rules_yaml(specs), "<bench>")
    res.raise_for_errors()
    enf = Enforcer.from_rules(res.ruleset, EnforceConfig(mode="on", never_kill=[]),
                              cgroup=cgroup)
    assert enf is not None
    return enf


def _probe(enf: Any | None, exe: Path, secret: str, trials: int, what: str) -> KillProbe:
    def once() -> tuple[int, str, int, int]:
        p = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out, _ = p.communicate()
        return p.returncode, out.decode(errors="replace"), p.pid, time.time_ns()

    rc, out, _, _ = once() if enf is None else (0, "", 0, 0)
    result = KillProbe(what, secret in out, trials, 0, 0)
    if enf is None:
        return result
    for _ in range(trials):
        rc, out, pid, t_dead = once()
        result.killed += rc == -signal.SIGKILL
        result.outputs_seen += secret in out
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            reps = [r for r in enf.poll_actions(5) if r.pid == pid]
            if reps:
                result.latency_us.append((t_dead - reps[0].ts) / 1000)
                break
    return result


def run_enforce_bench(calls: int = 200_000, reps: int = 5, trials: int = 100
                      ) -> EnforceBenchResult:
    from sysward.kernel.probe import cgroup2_mount, require_privileges

    require_privileges()
    nscall = cbuild.build("nscall")
    loop = cbuild.build("enf_loop")
    root = cgroup2_mount()
    if root is None:
        raise SyswardError("the enforce benchmark needs a cgroup v2 mount for the connect hook.")
    work = Path(tempfile.mkdtemp(prefix="sysward-enf-bench-"))
    cg = root / f"sysward-enf-bench-{os.getpid()}"
    cg.mkdir(exist_ok=True)
    try:
        in_cg = ["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$@"', "sh"]
        cases = [("openat", "open (exit)", [str(nscall), "openat", str(calls)]),
                 ("setuid", "setuid (entry)", [str(nscall), "setuid", str(calls)]),
                 ("connect", "cgroup/connect4", in_cg + [str(loop), str(calls), "9"])]
        never = f"/nonexistent-sysward-{uuid.uuid4().hex[:6]}"
        specs = [("bench open", f"evt.type = openat and fd.name startswith {never}/", "kill"),
                 ("bench setuid", "evt.type = setuid and proc.name = sysward-none", "kill"),
                 ("bench connect", "evt.type = connect and fd.rip = 127.0.0.2 and "
                                   "fd.rport = 1", "deny")]
        # Rounds alternate without / with, and each side keeps its fastest round: the host
        # is shared, and the minimum is the run least disturbed by everything else.
        base: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        loaded: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        for _ in range(reps):
            for name, _, cmd in cases:
                base[name].append(_median_ns(cmd, 1))
            enf = _enforcer(specs, str(cg))
            enf.start()
            try:
                for name, _, cmd in cases:
                    loaded[name].append(_median_ns(cmd, 1))
            finally:
                enf.close()
        overhead = [Overhead(name, hook, min(base[name]), min(loaded[name]))
                    for name, hook, _ in cases]
        progs = {"openat": "enf_exit_openat", "setuid": "enf_enter_setuid",
                 "connect": "enf_connect4"}
        enf = _enforcer(specs, str(cg))
        enf.start()
        try:
            kernel_ns = _prog_ns(enf, [(progs[name], cmd) for name, _, cmd in cases])
        finally:
            enf.close()
        for o in overhead:
            o.prog_ns = kernel_ns.get(progs[o.syscall], 0.0)

        canary = work / "canary.txt"
        canary.write_text("CANARY-BENCH-TEXT\n")
        first_write = _build_first(work, "WRITE")
        first_open = _build_first(work, "OPEN", canary)
        probes = []
        ctl_exec = _probe(None, first_write, "RAN", 0, "exec")
        ctl_open = _probe(None, first_open, "CANARY", 0, "open")
        enf = _enforcer([("bench kill exec", f"evt.type = execve and proc.exepath = "
                                             f"{first_write}", "kill"),
                         ("bench kill open", f"evt.type = openat and fd.name = {canary}",
                          "kill")], None)
        enf.start()
        try:
            for ctl, exe, secret, what in ((ctl_exec, first_write, "RAN", "exec"),
                                           (ctl_open, first_open, "CANARY", "open")):
                p = _probe(enf, exe, secret, trials, what)
                p.control_output_seen = ctl.control_output_seen
                probes.append(p)
        finally:
            enf.close()
        return EnforceBenchResult(overhead, probes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for _ in range(50):
            try:
                cg.rmdir()
                break
            except OSError:
                time.sleep(0.02)


def format_report(r: EnforceBenchResult) -> str:
    lines = ["Enforcement overhead (ns per call, best of the rounds; rules that never match):",
             f"  {'syscall':<9} {'hook':<17} {'without':>9} {'with':>9} {'delta':>8} "
             f"{'in-kernel prog':>15}"]
    for o in r.overhead:
        lines.append(f"  {o.syscall:<9} {o.hook:<17} {o.base_ns:>9.0f} {o.enforced_ns:>9.0f} "
                     f"{o.delta_ns:>+8.0f} {o.prog_ns:>15.0f}")
    lines.append("Kill finality (probe programs whose first instructions are the syscall):")
    for p in r.probes:
        ctl = "yes" if p.control_output_seen else "NO"
        lines.append(f"  {p.what:<5} control output seen: {ctl}"
                     f"; killed {p.killed}/{p.trials}; output seen after kill: {p.outputs_seen}"
                     f"; hook->waitpid latency p50 {p.pct(0.5):.0f} us, p99 {p.pct(0.99):.0f} us")
    return "\n".join(lines)


@click.command(name="enforce")
@click.option("--calls", type=click.IntRange(min=1000), default=200_000, show_default=True,
              help="Syscalls per timed loop.")
@click.option("--reps", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--trials", type=click.IntRange(min=1), default=100, show_default=True,
              help="Killed probe runs per hook.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def enforce_bench(calls: int, reps: int, trials: int, as_json: bool) -> None:
    """Overhead of the enforcement hooks and proof that a kill is final."""
    r = run_enforce_bench(calls, reps, trials)
    if as_json:
        click.echo(orjson.dumps(r.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_report(r))
