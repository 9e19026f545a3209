"""``sysward bench sensors``: what the sensors cost a syscall, and whether a flood gets through.

Measured side by side in one run, on this machine:

1. ns per call of ``setuid`` (monitored) and ``getpid`` (never hooked) in a tight C loop, with
   no agent and with sysward's sensor attached (setuid only) plus a consumer that drains the
   ring buffer every ~10 ms and decodes every record into an Event.  The loop helper is
   compiled with ``cc`` at bench time, so the timed loop is raw ``syscall(2)`` calls with no
   interpreter in between.  Every setuid of the loop must arrive decoded.
   The in-kernel time of the setuid program comes from the kernel's own BPF run statistics
   (run_time_ns / run_cnt), the one figure other processes on the machine do not disturb.
2. A flood: ``workers`` processes issue ``flood_events`` setuid calls in total as fast as they
   can, against a ring buffer of ``ringbuf_mb``; we report events generated, submitted by the
   kernel, lost (ring buffer full) and delivered (decoded) in user space.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import struct
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson

from sysward.agent.sensors import READER_NICE, Sensor, raise_reader_priority
from sysward.errors import SyswardError
from sysward.events.decoder import Decoder
from sysward.events.types import HEADER

LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static double ns(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1e9 + (b->tv_nsec - a->tv_nsec);
}

/* loop SYSCALL N: call it N times (raw syscall, no libc wrapper), print ns per call, wall
 * clock and this process's CPU time (user + kernel, BPF programs included: they run in the
 * caller's context; time spent waiting for a CPU is not in it) */
int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	long nr = strcmp(argv[1], "setuid") == 0 ? SYS_setuid : SYS_getpid;
	long n = atol(argv[2]);
	struct timespec a, b, ca, cb;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		syscall(nr, 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
	printf("%.2f %.2f\n", ns(&a, &b) / (double)n, ns(&ca, &cb) / (double)n);
	return 0;
}
"""

TARGET_MONITORED_NS = 150.0
TARGET_UNMONITORED_PCT = 2.0


@dataclass
class SensorsBenchResult:
    calls: int
    reps: int
    setuid_ns_base: float = 0.0
    setuid_ns_sensor: float = 0.0
    getpid_ns_base: float = 0.0
    getpid_ns_sensor: float = 0.0
    # the same loops in CPU time of the calling process (not disturbed by CPU contention)
    setuid_cpu_base: float = 0.0
    setuid_cpu_sensor: float = 0.0
    getpid_cpu_base: float = 0.0
    getpid_cpu_sensor: float = 0.0
    monitored_generated: int = 0
    monitored_delivered: int = 0
    flood_workers: int = 0
    flood_ringbuf_mb: int = 0
    flood_generated: int = 0
    flood_submitted: int = 0
    flood_lost: int = 0
    flood_delivered: int = 0
    flood_seconds: float = 0.0
    kernel_ns: dict[str, float] = field(default_factory=dict)  # per program, kernel bpf stats
    kernel_ns_min: dict[str, float] = field(default_factory=dict)  # best of 10 slices
    decode: bool = True  # the consumer decodes every record into an Event
    reader_nice: int = READER_NICE  # the consumer thread's nice value (0: not raised)
    other_sensors: int = 0  # sysward programs of other agents loaded during the run
    bpf_stats_preset: bool = False  # kernel.bpf_stats_enabled was already on (inflates loops)
    loadavg: float = 0.0  # 1-minute load average at the start
    targets: dict[str, bool] = field(default_factory=dict)

    @property
    def kernel_ns_total(self) -> float:
        return sum(self.kernel_ns.values())

    @property
    def setuid_overhead_ns(self) -> float:
        return self.setuid_ns_sensor - self.setuid_ns_base

    @property
    def getpid_overhead_pct(self) -> float:
        return 100.0 * (self.getpid_ns_sensor - self.getpid_ns_base) / self.getpid_ns_base

    @property
    def setuid_cpu_overhead_ns(self) -> float:
        return self.setuid_cpu_sensor - self.setuid_cpu_base

    @property
    def getpid_cpu_overhead_pct(self) -> float:
        return 100.0 * (self.getpid_cpu_sensor - self.getpid_cpu_base) / self.getpid_cpu_base


def build_loop(workdir: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise SyswardError("the sensors benchmark needs a C compiler (cc); apt-get install gcc.")
    src = workdir / "loop.c"
    src.write_text(LOOP_C)
    exe = workdir / "loop"
    subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def _ns_per_call(loop: Path, syscall: str, calls: int,
                 reps: int) -> tuple[float, float, list[int]]:
    """Median wall-clock and CPU-time ns/call over ``reps`` runs; also the pids of the runs."""
    wall, cpu, pids = [], [], []
    for _ in range(reps):
        p = subprocess.Popen([str(loop), syscall, str(calls)], stdout=subprocess.PIPE, text=True)
        out, _ = p.communicate()
        w, c = out.split()
        wall.append(float(w))
        cpu.append(float(c))
        pids.append(p.pid)
    return statistics.median(wall), statistics.median(cpu), pids


_PID = struct.Struct("<I")
_PID_OFF = HEADER.offsets()["pid"][0]


class _Consumer:
    """Drains the sensor every ~10 ms in a thread; decodes every record into an Event, or with
    ``decode=False`` only reads each record's pid (the reader's own throughput)."""

    def __init__(self, sensor: Sensor, decode: bool = True, nice: int = READER_NICE) -> None:
        self.decode = decode
        self.nice = nice
        self.decoder = Decoder()
        self.per_pid: Counter[int] = Counter()
        self.delivered = 0
        self._stop = threading.Event()
        self.reader = sensor.ring_buffer(self._on_batch)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_batch(self, records: list[bytes]) -> None:
        if self.decode:
            self.per_pid.update(ev.pid for ev in self.decoder.decode_batch(records))
        else:
            unpack = _PID.unpack_from
            self.per_pid.update(unpack(rec, _PID_OFF)[0] for rec in records)
        self.delivered += len(records)

    def _run(self) -> None:
        if self.nice:
            raise_reader_priority(self.nice)
        while not self._stop.is_set():
            self.reader.poll(10)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.reader.drain()
        self.reader.close()


def _prog_stats(prog_ids: list[int]) -> dict[int, tuple[int, int]]:
    """run_time_ns and run_cnt of the given programs, from the kernel's BPF statistics."""
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True,
                         check=False).stdout
    try:
        progs = orjson.loads(out)
    except ValueError:
        return {}
    return {p["id"]: (int(p.get("run_time_ns", 0)), int(p.get("run_cnt", 0)))
            for p in progs if p.get("id") in prog_ids}


def _kernel_cost(loop: Path, sensor: Sensor, calls: int,
                 slices: int = 10) -> tuple[dict[str, float], dict[str, float]]:
    """In-kernel ns per run of each setuid program, from the kernel's own BPF run stats: the
    mean over ``calls`` calls, and the best of ``slices`` slices of it (a slice that met an
    interrupt or a stolen vCPU inflates the mean, never the best).

    Stats are switched on only for this extra run (unless they already were): they add two
    clock reads per program run, which would inflate the timed loops above.
    """
    knob = Path("/proc/sys/kernel/bpf_stats_enabled")
    try:
        old = knob.read_text().strip()
        knob.write_text("1")
    except OSError:
        return {}, {}
    progs = {p.id: p.name for p in sensor.obj.programs
             if p.autoload and p.name in sensor.active[0].programs}
    per: dict[str, list[float]] = {name: [] for name in progs.values()}
    total: dict[str, list[int]] = {name: [0, 0] for name in progs.values()}
    try:
        for _ in range(slices):
            before = _prog_stats(list(progs))
            subprocess.run([str(loop), "setuid", str(max(calls // slices, 1000))],
                           stdout=subprocess.DEVNULL, check=True)
            after = _prog_stats(list(progs))
            for pid_, name in progs.items():
                if pid_ not in before or pid_ not in after:
                    continue
                dt = after[pid_][0] - before[pid_][0]
                dn = after[pid_][1] - before[pid_][1]
                if dn > 0:
                    per[name].append(dt / dn)
                    total[name][0] += dt
                    total[name][1] += dn
    finally:
        knob.write_text(old)
    mean = {n: t / c for n, (t, c) in total.items() if c}
    best = {n: min(v) for n, v in per.items() if v}
    return mean, best


def _other_sensor_programs() -> int:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True,
                         check=False).stdout
    try:
        return sum(1 for p in orjson.loads(out) if str(p.get("name", "")).startswith("sw_"))
    except ValueError:
        return 0


def run_sensors_bench(calls: int = 300_000, reps: int = 5, flood_events: int = 1_000_000,
                      workers: int = 2, ringbuf_mb: int = 16,
                      decode: bool = True, reader_nice: int = READER_NICE) -> SensorsBenchResult:
    res = SensorsBenchResult(calls=calls, reps=reps, flood_workers=workers,
                             flood_ringbuf_mb=ringbuf_mb, decode=decode, reader_nice=reader_nice)
    res.other_sensors = _other_sensor_programs()
    res.loadavg = os.getloadavg()[0]
    with contextlib.suppress(OSError):
        stats = Path("/proc/sys/kernel/bpf_stats_enabled").read_text().strip()
        res.bpf_stats_preset = stats == "1"
    with tempfile.TemporaryDirectory(prefix="sysward-bench-") as tmp:
        loop = build_loop(Path(tmp))
        _ns_per_call(loop, "getpid", calls // 10, 1)  # warm up caches and the CPU clock
        res.setuid_ns_base, res.setuid_cpu_base, _ = _ns_per_call(loop, "setuid", calls, reps)
        res.getpid_ns_base, res.getpid_cpu_base, _ = _ns_per_call(loop, "getpid", calls, reps)

        with Sensor(["setuid"], ringbuf_bytes=ringbuf_mb << 20) as sensor:
            consumer = _Consumer(sensor, decode, reader_nice)
            try:
                res.setuid_ns_sensor, res.setuid_cpu_sensor, pids = _ns_per_call(
                    loop, "setuid", calls, reps)
                res.getpid_ns_sensor, res.getpid_cpu_sensor, _ = _ns_per_call(
                    loop, "getpid", calls, reps)
            finally:
                time.sleep(0.05)
                consumer.stop()
            res.monitored_generated = calls * reps
            res.monitored_delivered = sum(consumer.per_pid.get(p, 0) for p in pids)
            res.kernel_ns, res.kernel_ns_min = _kernel_cost(loop, sensor, calls)

        with Sensor(["setuid"], ringbuf_bytes=ringbuf_mb << 20) as sensor:
            consumer = _Consumer(sensor, decode, reader_nice)
            per_worker = flood_events // workers
            t0 = time.monotonic()
            procs = [subprocess.Popen([str(loop), "setuid", str(per_worker)],
                                      stdout=subprocess.DEVNULL) for _ in range(workers)]
            for p in procs:
                p.wait()
            res.flood_seconds = time.monotonic() - t0
            time.sleep(0.05)
            consumer.stop()
            wpids = {p.pid for p in procs}
            c = sensor.counters()["setuid"]
            res.flood_generated = per_worker * workers
            res.flood_submitted = c.submitted
            res.flood_lost = c.lost
            res.flood_delivered = sum(n for pid, n in consumer.per_pid.items() if pid in wpids)

    res.targets = {
        "setuid_overhead_le_150ns": res.setuid_overhead_ns <= TARGET_MONITORED_NS,
        "setuid_cpu_overhead_le_150ns": res.setuid_cpu_overhead_ns <= TARGET_MONITORED_NS,
        "every_monitored_event_delivered": res.monitored_delivered == res.monitored_generated,
        "getpid_overhead_le_2pct": res.getpid_overhead_pct <= TARGET_UNMONITORED_PCT,
        "getpid_cpu_overhead_le_2pct": res.getpid_cpu_overhead_pct <= TARGET_UNMONITORED_PCT,
        "flood_zero_lost": res.flood_lost == 0
        and res.flood_delivered == res.flood_generated,
    }
    return res


def format_report(r: SensorsBenchResult) -> str:
    def ok(key: str) -> str:
        return "met" if r.targets.get(key) else "MISSED"

    warn = []
    if r.other_sensors:
        warn = [f"WARNING: {r.other_sensors} sysward programs of other agents were loaded "
                "during the run; they hook the same syscalls and their consumers compete for "
                "the CPUs, so the figures include their cost.", ""]
    if r.bpf_stats_preset:
        warn += ["WARNING: kernel.bpf_stats_enabled was already on (someone else set it): the "
                 "timed loops include two clock reads per BPF program run.", ""]
    kernel = " + ".join(f"{name} {ns:.0f} ns" for name, ns in r.kernel_ns.items()) or "n/a"
    best = " + ".join(f"{ns:.0f}" for ns in r.kernel_ns_min.values()) or "n/a"
    return "\n".join([
        *warn,
        f"sysward bench sensors  ({os.cpu_count()} CPUs, {os.uname().release}; "
        f"median of {r.reps} x {r.calls:,} calls; load average {r.loadavg:.2f})",
        "",
        f"{'ns per call':<30} {'no agent':>10} {'sensors':>10} {'overhead':>12}",
        f"{'setuid (monitored), wall':<30} {r.setuid_ns_base:>10.1f} {r.setuid_ns_sensor:>10.1f} "
        f"{r.setuid_overhead_ns:>+10.1f}ns   target <= +150 ns: "
        f"{ok('setuid_overhead_le_150ns')}",
        f"{'getpid (not hooked), wall':<30} {r.getpid_ns_base:>10.1f} "
        f"{r.getpid_ns_sensor:>10.1f} {r.getpid_overhead_pct:>+10.1f} %   target <= 2 %: "
        f"{ok('getpid_overhead_le_2pct')}",
        f"{'setuid (monitored), CPU time':<30} {r.setuid_cpu_base:>10.1f} "
        f"{r.setuid_cpu_sensor:>10.1f} {r.setuid_cpu_overhead_ns:>+10.1f}ns   target <= +150 ns: "
        f"{ok('setuid_cpu_overhead_le_150ns')}",
        f"{'getpid (not hooked), CPU time':<30} {r.getpid_cpu_base:>10.1f} "
        f"{r.getpid_cpu_sensor:>10.1f} {r.getpid_cpu_overhead_pct:>+10.1f} %   target <= 2 %: "
        f"{ok('getpid_cpu_overhead_le_2pct')}",
        f"in-kernel time per monitored setuid (kernel BPF stats): {kernel} "
        f"(best 1/10 slice: {best} ns)",
        f"monitored setuid events: generated {r.monitored_generated:,}, delivered "
        f"{r.monitored_delivered:,} ({ok('every_monitored_event_delivered')})",
        "",
        f"consumer: drains every ~10 ms at nice {r.reader_nice}, "
        f"{'decodes every record into an Event' if r.decode else 'counts records (no decode)'}",
        f"flood: {r.flood_workers} workers, {r.flood_ringbuf_mb} MB ring buffer, "
        f"{r.flood_seconds:.2f} s ({r.flood_generated / max(r.flood_seconds, 1e-9):,.0f} ev/s)",
        f"  generated {r.flood_generated:,}  submitted {r.flood_submitted:,}  "
        f"lost {r.flood_lost:,}  delivered {r.flood_delivered:,}   target 0 lost: "
        f"{ok('flood_zero_lost')}",
    ])


@click.command(name="sensors")
@click.option("--calls", type=click.IntRange(min=1000), default=300_000, show_default=True,
              help="Syscalls per timed run.")
@click.option("--reps", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--flood-events", type=click.IntRange(min=1), default=1_000_000,
              show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--ringbuf-mb", type=int, default=16, show_default=True)
@click.option("--decode/--no-decode", default=True, show_default=True,
              help="Decode every record into an Event, or only count it (reader throughput).")
@click.option("--reader-nice", type=click.IntRange(-20, 19), default=READER_NICE,
              show_default=True, help="Nice value of the consumer thread (0: leave it).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def sensors_bench(calls: int, reps: int, flood_events: int, workers: int, ringbuf_mb: int,
                  decode: bool, reader_nice: int, as_json: bool) -> None:
    """Syscall overhead of the sensors, and a 1M-event flood (generated/delivered/lost)."""
    r = run_sensors_bench(calls, reps, flood_events, workers, ringbuf_mb, decode, reader_nice)
    if as_json:
        data: dict[str, Any] = asdict(r)
        data["setuid_overhead_ns"] = r.setuid_overhead_ns
        data["getpid_overhead_pct"] = r.getpid_overhead_pct
        data["kernel_ns_total"] = r.kernel_ns_total
        data["setuid_cpu_overhead_ns"] = r.setuid_cpu_overhead_ns
        data["getpid_cpu_overhead_pct"] = r.getpid_cpu_overhead_pct
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_report(r))
