"""The agent under test: a real ``sysward run`` subprocess (or one already running), its
/metrics counters, and where its alerts land.

Benches start the agent with its alerts in a private JSON lines file (no sqlite store) and
the notification rate limit off (a bench counts detections, so nothing should be held back),
and read the agent's own kernel and pipeline counters from /metrics.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from sysward.errors import SyswardError

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sysward_argv() -> list[str]:
    """How to start this very sysward: the console script next to our interpreter if any."""
    script = Path(sys.executable).with_name("sysward")
    if script.exists():
        return [str(script)]
    found = shutil.which("sysward")
    return [found] if found else [sys.executable, "-m", "sysward"]


def _sysward_program_ids() -> set[int]:
    try:
        out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                             text=True, timeout=10).stdout
        progs = orjson.loads(out or "[]")
    except (OSError, subprocess.SubprocessError, orjson.JSONDecodeError):
        return set()
    return {int(p["id"]) for p in progs if str(p.get("name", "")).startswith(("sw_", "enf_"))}


def wait_programs_released(timeout: float = 15.0) -> None:
    """Wait until the kernel has released the programs of a stopped agent.

    The agent exits at once and leaves the kernel's slow release of its tracepoints (one
    grace period each) to a child; a measurement taken meanwhile would pay for that release.
    """
    deadline = time.monotonic() + timeout
    while _sysward_program_ids() and time.monotonic() < deadline:
        time.sleep(0.2)


@dataclass(slots=True)
class AgentCounters:
    """One scrape of /metrics, summed over event types / queues / outputs."""

    seen: float = 0.0  # hooked syscalls the kernel programs ran on
    filtered: float = 0.0  # dropped on purpose by the in-kernel filter
    submitted: float = 0.0  # written into the ring buffer
    lost: float = 0.0  # ring buffer full
    queue_dropped: float = 0.0  # bounded queues between stages full
    queue_depth: float = 0.0  # events waiting in those queues now
    output_dropped: float = 0.0
    events: float = 0.0  # events through the rule engine
    matches: float = 0.0
    rss_bytes: float = 0.0
    cpu_s: float = 0.0
    per_type_seen: dict[str, float] = field(default_factory=dict)
    per_type_lost: dict[str, float] = field(default_factory=dict)
    per_type_filtered: dict[str, float] = field(default_factory=dict)
    per_type_submitted: dict[str, float] = field(default_factory=dict)
    per_type_rejected: dict[str, float] = field(default_factory=dict)

    @property
    def drops(self) -> float:
        """Every event the agent saw but could not fully process."""
        return self.lost + self.queue_dropped


def parse_metrics(text: str) -> AgentCounters:
    c = AgentCounters()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, value, labels = s.name, float(s.value), s.labels
            if name == "sysward_kernel_seen_total":
                c.seen += value
                c.per_type_seen[labels.get("type", "")] = value
            elif name == "sysward_kernel_filtered_total":
                c.filtered += value
                c.per_type_filtered[labels.get("type", "")] = value
            elif name == "sysward_kernel_submitted_total":
                c.submitted += value
                c.per_type_submitted[labels.get("type", "")] = value
            elif name == "sysward_kernel_rejected_total":
                c.per_type_rejected[labels.get("type", "")] = value
            elif name == "sysward_kernel_lost_total":
                c.lost += value
                c.per_type_lost[labels.get("type", "")] = value
            elif name == "sysward_queue_depth":
                c.queue_depth += value
            elif name == "sysward_queue_dropped_total":
                c.queue_dropped += value
            elif name == "sysward_outputs_dropped_total":
                c.output_dropped += value
            elif name == "sysward_rules_events_total":
                c.events = value
            elif name == "sysward_rules_matches_total":
                c.matches = value
            elif name == "process_resident_memory_bytes":
                c.rss_bytes = value
            elif name == "process_cpu_seconds_total":
                c.cpu_s = value
    return c


def scrape(listen: str, timeout: float = 5.0) -> AgentCounters:
    try:
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=timeout) as resp:
            return parse_metrics(resp.read().decode())
    except (urllib.error.URLError, OSError) as exc:
        raise SyswardError(
            f"cannot read the agent's metrics at http://{listen}/metrics ({exc}); "
            "start it with its server on (--listen) or pass the right --metrics address."
        ) from None


def healthy(listen: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{listen}/healthz", timeout=1.0) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


class Agent:
    """A ``sysward run`` we started (``start``) or one that was already there (``attach``)."""

    def __init__(self, pid: int, listen: str, store: Path,
                 proc: subprocess.Popen[bytes] | None = None, workdir: Path | None = None,
                 log_path: Path | None = None) -> None:
        self.pid = pid
        self.listen = listen
        self.store = store
        self.proc = proc
        self.workdir = workdir
        self.log_path = log_path

    @classmethod
    def start(cls, workdir: Path, *, rules: Sequence[str] = (), extra: Sequence[str] = (),
              ringbuf_mb: int | None = None, queue_size: int | None = None,
              preexec: Callable[[], None] | None = None,
              program: Sequence[str] | None = None, store_alerts: bool = False) -> Agent:
        """Start the agent with the default (or given) rules; waits until /healthz says 200.

        ``program`` is the command that runs sysward (default: this one), so that a bench
        can run another build of it next to this one, interleaved.  ``store_alerts`` keeps
        the sqlite store on (in ``workdir``) for benches that want every output busy.
        """
        if os.geteuid() != 0:
            raise SyswardError("the bench starts the agent, which needs root; run it as root.")
        workdir.mkdir(parents=True, exist_ok=True)
        # Alerts are counted in the JSON lines file output (Falco's study counts its output
        # too); the sqlite store is off: at 20k alerts/s its single writer, sharing the GIL
        # with a busy worker, falls behind and drops (counted) what the rules did detect.
        store = workdir / "alerts.jsonl"
        listen = f"127.0.0.1:{free_port()}"
        sqlite = f"sqlite:{workdir / 'alerts.db'}" if store_alerts else "sqlite:off"
        argv = [*(program or sysward_argv()), "run", "-o", f"file:{store}", "-o", sqlite,
                "--set", "outputs.file.max_size_mb=100000", "--listen", listen,
                "--set", "rate_limit.rate=0"]
        for r in rules:
            argv += ["--rules", r]
        if ringbuf_mb is not None:
            argv += ["--ringbuf-mb", str(ringbuf_mb)]
        if queue_size is not None:
            argv += ["--queue-size", str(queue_size)]
        argv += list(extra)
        log_path = workdir / "agent.log"
        log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the agent
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                lines = log_path.read_text(errors="replace").strip().splitlines()
                last = lines[-1] if lines else "no output"
                raise SyswardError(f"the agent exited at start (status {proc.returncode}: "
                                   f"{last}); see {log_path}.")
            if healthy(listen):
                return cls(proc.pid, listen, store, proc, workdir, log_path)
            time.sleep(0.1)
        proc.kill()
        raise SyswardError(f"the agent did not become healthy within {START_TIMEOUT_S:.0f} s; "
                           f"see {log_path}.")

    @classmethod
    def attach(cls, pid: int, listen: str, store: Path) -> Agent:
        if not Path(f"/proc/{pid}").exists():
            raise SyswardError(f"no process {pid}; pass the pid of a running 'sysward run'.")
        if not store.exists():
            raise SyswardError(f"--alerts {store}: no such file; pass the alert file the agent "
                               "writes (its -o file:PATH).")
        scrape(listen)
        return cls(pid, listen, store)

    def counters(self) -> AgentCounters:
        return scrape(self.listen)

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM the agent we started; returns the shutdown time in seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        took = time.monotonic() - t0
        wait_programs_released()
        return took

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
