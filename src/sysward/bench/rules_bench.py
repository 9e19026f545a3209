"""``sysward bench rules``: rule-engine throughput on a mixed synthetic event stream.

The stream imitates a busy node: mostly file opens, then execs, connects, clones, and a tail
of rarer syscalls (dup, socket, setuid, ptrace, unlink, symlink...), each with a process
context of 1-4 ancestors, host or container.  A pool of distinct events is generated once
and cycled to the requested count, so the measurement is the rule stage alone (parsing and
enrichment are not timed) on one core: a plain loop calling ``ruleset.match``.

Reported: events/s, ns/event, alerts, and rules evaluated per event (the average number of
compiled predicates the event-type index hands each event: what indexing saves).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import orjson

from sysward.errors import SyswardError
from sysward.events.model import Event, Process

DEFAULT_EVENTS = 1_000_000
POOL_SIZE = 20_000
SHARED_RULES = Path(__file__).resolve().parents[3] / ".." / "shared" / "falco-rules"
T0 = 1_700_000_000_000_000_000

_COMMS = ["nginx", "python3", "bash", "sh", "java", "node", "postgres", "cat", "ls", "grep",
          "curl", "sshd", "containerd", "kubelet", "cron", "systemd", "redis-server", "git"]
_PATHS = ["/etc/hosts", "/etc/ld.so.cache", "/usr/lib/x86_64-linux-gnu/libc.so.6",
          "/proc/self/status", "/var/log/app.log", "/tmp/work/data.bin", "/etc/passwd",
          "/home/alice/.bashrc", "/usr/share/zoneinfo/UTC", "/var/lib/app/db.sqlite",
          "/dev/null", "/sys/fs/cgroup/cpu.max", "/etc/shadow", "/root/.ssh/id_rsa"]
_ARGS = [["-c", "echo ok"], ["-l"], ["--version"], ["/srv/app.py", "--port", "8080"],
         ["-jar", "app.jar"], ["status"], ["-r", "TODO", "."], []]
_IMAGES = ["docker.io/library/nginx:1.25", "ghcr.io/acme/api:2.3", "docker.io/library/redis:7"]

# (weight, kind) of the mix
_MIX = [(50, "open"), (10, "execve"), (10, "connect"), (6, "clone"), (4, "accept"),
        (4, "socket"), (3, "dup2"), (3, "unlinkat"), (2, "setuid"), (2, "procexit"),
        (2, "renameat2"), (1, "ptrace"), (1, "symlinkat"), (1, "chmod"), (1, "mkdirat")]


def _process(rng: random.Random, pid: int) -> Process:
    container = rng.random() < 0.4
    cid = f"{rng.getrandbits(48):012x}" if container else "host"
    image = rng.choice(_IMAGES) if container else ""
    parent: Process | None = Process(pid=1, comm="systemd", argv=["/sbin/init"],
                                     exepath="/usr/lib/systemd/systemd")
    for depth in range(rng.randint(1, 4)):
        comm = rng.choice(_COMMS)
        parent = Process(pid=pid - 10 * (depth + 1), comm=comm, argv=[comm, *rng.choice(_ARGS)],
                         exepath=f"/usr/bin/{comm}", container_id=cid, container_image=image,
                         parent=parent, start_time=T0 - 3_600_000_000_000)
    comm = rng.choice(_COMMS)
    return Process(pid=pid, ppid=parent.pid if parent else 0, comm=comm,
                   argv=[comm, *rng.choice(_ARGS)], exepath=f"/usr/bin/{comm}",
                   cwd="/srv", user="app", group="app", container_id=cid,
                   container_image=image, cap_effective=0xA80425FB, parent=parent,
                   start_time=T0 - rng.randint(1, 600) * 1_000_000_000)


def _event(rng: random.Random, kind: str, proc: Process, num: int) -> Event:
    a: dict[str, Any]
    etype, res = kind, 0
    if kind == "open":
        etype = rng.choice(["openat", "openat", "open"])
        res = rng.choice([3, 4, 5, 7, -2])
        a = {"name": rng.choice(_PATHS), "flags": rng.choice([0, 0x80000, 1 | 0x40 | 0x200, 2]),
             "mode": 0o644, "dirfd": -100}
    elif kind == "execve":
        a = {"filename": proc.exepath, "argv": proc.argv, "cwd": proc.cwd, "exe_flags": 0,
             "env": ["PATH=/usr/bin"], "cap_effective": proc.cap_effective}
    elif kind in ("connect", "accept"):
        etype = "connect" if kind == "connect" else "accept4"
        a = {"fd": 3, "family": 2, "addr": f"198.51.100.{rng.randint(1, 254)}",
             "port": rng.choice([443, 80, 5432, 6379, 22]), "saddr": "192.0.2.10",
             "sport": rng.randint(32768, 60999), "sotype": 1, "proto": 6}
        res = 0 if kind == "connect" else 6
    elif kind == "clone":
        a, res = {"flags": 0x1200011}, proc.pid + 1
    elif kind == "socket":
        a, res = {"domain": rng.choice([2, 10, 1]), "type": 1, "proto": 0}, 5
    elif kind == "dup2":
        a = {"oldfd": 5, "newfd": 1, "fd_type": rng.choice(["p", "f", "u"])}
        res = 1
    elif kind == "unlinkat":
        a = {"name": "/tmp/work/tmp.txt", "flags": 0, "dirfd": -100}
    elif kind == "setuid":
        a = {"uid": 1000}
    elif kind == "procexit":
        a = {"status": 0, "signal": 0, "core": False}
    elif kind == "renameat2":
        a = {"oldpath": "/tmp/work/a", "newpath": "/tmp/work/b", "flags": 0}
    elif kind == "ptrace":
        a = {"request": rng.choice([2, 7, 16]), "pid": 4000}
    elif kind == "symlinkat":
        a = {"target": "/srv/current", "linkpath": "/srv/app"}
    elif kind == "chmod":
        a = {"filename": "/tmp/work/run.sh", "mode": 0o755}
    else:
        a = {"path": "/tmp/work/dir", "mode": 0o755}
    ev = Event(ts=T0 + num * 1000, type=etype, pid=proc.pid, tid=proc.pid, ppid=proc.ppid,
               uid=1000, gid=1000, euid=1000, egid=1000, comm=proc.comm, res=res, args=a,
               num=num, start_time=proc.start_time)
    ev.proc = proc
    return ev


def synthetic_pool(size: int = POOL_SIZE, seed: int = 7) -> list[Event]:
    """``size`` distinct events following the mix, each with its process context."""
    rng = random.Random(seed)
    kinds = [k for w, k in _MIX for _ in range(w)]
    procs = [_process(rng, 2000 + 50 * i) for i in range(512)]
    return [_event(rng, rng.choice(kinds), rng.choice(procs), i + 1) for i in range(size)]


@dataclass(slots=True)
class RulesBenchResult:
    rules: int
    events: int
    seconds: float
    events_per_s: float
    ns_per_event: float
    alerts: int
    rules_evaluated_per_event: float
    event_types: dict[str, int]

    def text(self) -> str:
        return (f"rules loaded: {self.rules}\n"
                f"events: {self.events} (mix: " + ", ".join(
                    f"{k} {v * 100 / self.events:.0f}%" for k, v in sorted(
                        self.event_types.items(), key=lambda kv: -kv[1])[:8]) + ", ...)\n"
                f"time: {self.seconds:.2f} s on one core\n"
                f"throughput: {self.events_per_s:,.0f} events/s "
                f"({self.ns_per_event:,.0f} ns/event)\n"
                f"rules evaluated per event: {self.rules_evaluated_per_event:.2f}\n"
                f"alerts: {self.alerts}")


def run_rules_bench(rule_paths: Sequence[str], events: int = DEFAULT_EVENTS,
                    pool: list[Event] | None = None) -> RulesBenchResult:
    from sysward.rules import load_rules

    result = load_rules(list(rule_paths))
    ruleset = result.ruleset
    pool = pool if pool is not None else synthetic_pool()
    per_type = {t: len(ruleset.rules_for_type(t)) for t in {e.type for e in pool}}
    match = ruleset.match
    n, size = events, len(pool)
    alerts = 0
    start = time.perf_counter()
    full, rest = divmod(n, size)
    for _ in range(full):
        for ev in pool:
            if match(ev):
                alerts += 1
    for ev in pool[:rest]:
        if match(ev):
            alerts += 1
    seconds = time.perf_counter() - start
    counts = Counter(e.type for e in pool)
    evaluated = sum(per_type[t] * c for t, c in counts.items()) / size
    mix = {t: c * n // size for t, c in counts.items()}
    return RulesBenchResult(rules=result.rules_loaded, events=n, seconds=seconds,
                            events_per_s=n / seconds if seconds else 0.0,
                            ns_per_event=seconds * 1e9 / n if n else 0.0, alerts=alerts,
                            rules_evaluated_per_event=evaluated, event_types=mix)


def default_rule_paths() -> list[str]:
    files = sorted(SHARED_RULES.glob("falco*_rules.yaml"))
    if not files:
        raise SyswardError(f"no Falco rule files found in {SHARED_RULES}; give them with "
                           f"--rules FILE (repeatable).")
    return [str(f) for f in files]


@click.command(name="rules")
@click.option("--rules", "rule_paths", multiple=True, metavar="FILE|DIR",
              help="Rule files (default: the three Falco files in ../shared/falco-rules).")
@click.option("--events", "count", type=click.IntRange(min=1), default=DEFAULT_EVENTS,
              show_default=True, help="How many events to replay.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def rules_bench(rule_paths: tuple[str, ...], count: int, as_json: bool) -> None:
    """Replay a mixed synthetic stream through the rules and print events/s (one core)."""
    paths = list(rule_paths) or default_rule_paths()
    result = run_rules_bench(paths, count)
    if as_json:
        click.echo(orjson.dumps(asdict(result)).decode())
    else:
        click.echo(result.text())
