"""``sysward bench generate`` and ``sysward bench run``: the event-generator methodology.

Rounds of actions at a rising rate (the pause between actions halves each round) against a
real agent; per round, the detections each action should have caused are counted in the
agent's real output.  The loop stops at the first round that lost a detection, or when the
rate stops growing (the actions themselves are then the limit), and names the last round
without loss: the sustainable actions/s (EPS) and hooked syscalls/s on this machine.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from sysward.bench import actions as act
from sysward.bench.agent import Agent
from sysward.bench.container import BenchContainer
from sysward.bench.detections import AlertFeed, Attribution, Matcher, open_feed
from sysward.bench.procstats import ProcWatch, sample
from sysward.bench.report import Report, Table, bench_console, check_writable_file
from sysward.errors import SyswardError

TARGET_STUDY_EPS = 20_000
MAX_ROUNDS = 40


# -- workers ----------------------------------------------------------------------------


class Worker:
    def __init__(self, marker: str, container: BenchContainer | None) -> None:
        argv = [sys.executable, "-m", "sysward.bench.worker", marker]
        self.in_container = container is not None
        if container is not None:
            argv = container.wrap(argv)
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            preexec_fn=container.join if container is not None else None,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SyswardError("a bench worker failed to start; see the messages above.")
        self.pid = int(orjson.loads(line)["worker_pid"])

    def send(self, req: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(req) + b"\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SyswardError("a bench worker died during a round; see the messages above.")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Workers:
    """``per_place`` host workers and, when container actions are chosen, as many in the
    bench container; a round sends each its share of the actions."""

    def __init__(self, chosen: Sequence[act.Action], marker: str, per_place: int = 1) -> None:
        self.host_actions = [a.name for a in chosen if a.place == act.HOST]
        self.container_actions = [a.name for a in chosen if a.place == act.CONTAINER]
        self.container: BenchContainer | None = None
        self.workers: list[tuple[Worker, list[str]]] = []
        self._stack = contextlib.ExitStack()
        try:
            if self.container_actions:
                self.container = self._stack.enter_context(BenchContainer())
            for _ in range(per_place):
                if self.host_actions:
                    self.workers.append((Worker(marker, None), self.host_actions))
                if self.container_actions:
                    self.workers.append((Worker(marker, self.container), self.container_actions))
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [w.pid for w, _ in self.workers]

    def round(self, sleep: float, duration: float, iterations: int | None,
              delay: float) -> dict[str, Any]:
        # Each worker is paced so that all of them together start one action per `sleep`.
        n = len(self.workers)
        for w, names in self.workers:
            w.send({"actions": names, "sleep": sleep * n, "duration": duration,
                    "iterations": iterations, "delay": delay})
        counts: Counter[str] = Counter()
        errors: dict[str, dict[str, int]] = {}
        pids: dict[str, list[int]] = {}
        elapsed = 0.0
        for w, _ in self.workers:
            ans = w.receive()
            counts.update(ans["counts"])
            for k, v in ans["errors"].items():
                errors.setdefault(k, {}).update(v)
            for k, v in ans["pids"].items():
                pids.setdefault(k, []).extend(v)
            elapsed = max(elapsed, float(ans["elapsed"]))
        return {"counts": counts, "errors": errors, "pids": pids, "elapsed": elapsed}

    def close(self) -> None:
        for w, _ in self.workers:
            w.close()
        self._stack.close()


# -- rounds ------------------------------------------------------------------------------


@dataclass
class RoundResult:
    round: int
    sleep_s: float
    elapsed_s: float
    actions: int
    eps: float
    expected: int
    detected: int
    lost: int
    lost_pct: float
    agent_cpu_pct: float
    agent_rss_mb: float
    syscalls_per_s: float  # hooked syscalls the agent's kernel programs saw
    kernel_lost: int
    queue_dropped: int
    per_action: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, dict[str, int]] = field(default_factory=dict)


class RssSampler(threading.Thread):
    """RSS and CPU of the agent every ``interval`` s, for the RSS-over-time plot."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.points: list[tuple[float, float]] = []  # (s since start, RSS MB)
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                s = sample(self.pid)
            except ProcessLookupError:
                return
            self.points.append((s.wall - self._t0, s.rss_bytes / 2**20))

    def stop(self) -> None:
        self._halt.set()


def settle(matcher: Matcher, feed: AlertFeed, expected: int, timeout: float) -> None:
    """Read alerts until every expected one arrived (plus a short grace for extras), or
    nothing new came for a while, or ``timeout``."""
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    while time.monotonic() < deadline:
        new = feed.new()
        if new:
            last_new = time.monotonic()
            matcher.feed(new)
        quiet = time.monotonic() - last_new
        got = sum(matcher.per_rule.values())
        if got >= expected and quiet > 0.3:
            return
        if quiet > 2.0:
            return
        time.sleep(0.05)


def run_round(n: int, agent: Agent, feed: AlertFeed, workers: Workers,
              chosen: Sequence[act.Action], marker: str, *, sleep: float, duration: float,
              iterations: int | None, delay: float,
              gaps: frozenset[str] = frozenset()) -> RoundResult:
    matcher = Matcher(chosen, marker, since_ns=time.time_ns() - 50_000_000)
    c0 = agent.counters()
    watch = ProcWatch(agent.pid)
    ans = workers.round(sleep, duration, iterations, delay)
    c_mid = agent.counters()  # the syscall rate is that of the round itself, not the settling
    matcher.add_pids(ans["pids"])
    counts: Counter[str] = ans["counts"]
    expected_runs = Counter({a.name: counts.get(a.name, 0) for a in chosen
                             if a.sysward_rule is not None and a.name not in gaps})
    settle(matcher, feed, sum(expected_runs.values()), timeout=max(5.0, delay + 3.0))
    cpu, rss = watch.tick()
    c1 = agent.counters()
    att: Attribution = matcher.attribute(expected_runs)
    elapsed = ans["elapsed"]
    total = sum(counts.values())
    per_action: dict[str, dict[str, Any]] = {}
    for a in chosen:
        exp = att.expected.get(a.name, 0)
        det = att.detected.get(a.name, 0)
        per_action[a.name] = {
            "runs": counts.get(a.name, 0),
            "expected": exp if a.sysward_rule else None,
            "detected": det if a.sysward_rule else None,
            "ratio": (det / exp if exp else None) if a.sysward_rule else None,
            "rule": a.sysward_rule,
            "shared": a.sysward_rule in att.shared,
            "gap": a.name in gaps,
        }
    return RoundResult(
        round=n, sleep_s=sleep, elapsed_s=elapsed, actions=total,
        eps=total / elapsed if elapsed > 0 else 0.0,
        expected=att.total_expected, detected=att.total_detected, lost=att.lost,
        lost_pct=att.lost_pct, agent_cpu_pct=cpu, agent_rss_mb=rss / 2**20,
        syscalls_per_s=(c_mid.seen - c0.seen) / elapsed if elapsed > 0 else 0.0,
        kernel_lost=int(c1.lost - c0.lost), queue_dropped=int(c1.queue_dropped - c0.queue_dropped),
        per_action=per_action, errors=ans["errors"],
    )


def round_table(r: RoundResult) -> Table:
    t = Table(f"round {r.round} (sleep {r.sleep_s * 1e6:.0f} us)",
              ["action", "sysward rule", "runs", "expected", "detected", "ratio"])
    for name, pa in r.per_action.items():
        ratio = pa["ratio"]
        t.add(name.removeprefix("syscall."), (pa["rule"] or "(no rule)")
              + (" *" if pa["shared"] else ""), pa["runs"], pa["expected"], pa["detected"],
              "gap" if pa.get("gap") else f"{ratio:.2f}" if ratio is not None else "-")
    t.note = (f"EPS {r.eps:,.0f}/s, agent CPU {r.agent_cpu_pct:.0f} %, RSS "
              f"{r.agent_rss_mb:.0f} MB, lost {r.lost_pct:.2f} % ({r.lost}/{r.expected}), "
              f"hooked syscalls {r.syscalls_per_s:,.0f}/s, kernel lost {r.kernel_lost}, "
              f"queue drops {r.queue_dropped}" + ("; * rule shared by several actions"
                                                  if any(p["shared"] for p in
                                                         r.per_action.values()) else ""))
    return t


@contextlib.contextmanager
def agent_for(outdir: Path, pid: int | None, metrics: str | None, alerts: Path | None,
              rules: Sequence[str]) -> Iterator[tuple[Agent, AlertFeed]]:
    if pid is not None:
        if metrics is None or alerts is None:
            raise SyswardError("with --pid, also pass --metrics HOST:PORT and --alerts PATH "
                               "(the agent's sqlite store or JSON lines file).")
        agent = Agent.attach(pid, metrics, alerts)
        feed = open_feed(alerts)
    else:
        agent = Agent.start(outdir / "agent", rules=rules)
        feed = AlertFeed(agent.store)
    try:
        yield agent, feed
    finally:
        feed.close()
        agent.stop()


def run_generate(chosen: Sequence[act.Action], *, loop: bool, sleep: float,
                 round_duration: float, delay: float, workers_per_place: int,
                 agent: Agent, feed: AlertFeed, report: Report,
                 max_rounds: int = MAX_ROUNDS) -> list[RoundResult]:
    marker = f"swbench{secrets.token_hex(4)}"
    runnable = [a for a in chosen if a.missing() is None]
    rounds: list[RoundResult] = []
    sampler = RssSampler(agent.pid)
    sampler.start()
    workers = Workers(runnable, marker, workers_per_place)
    time.sleep(0.3)  # the workers' own start-up (unshare) is older than any round's window
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                      console=report.console, transient=True) as progress:
            total = max_rounds if loop else 1
            task = progress.add_task("rounds", total=total)
            best = 0.0
            n = 0
            gaps: frozenset[str] = frozenset()
            while True:
                n += 1
                progress.update(task, description=f"round {n} (sleep {sleep * 1e6:.0f} us)")
                r = run_round(n, agent, feed, workers, runnable, marker, sleep=sleep,
                              duration=round_duration if loop else 3600.0,
                              iterations=None if loop else 1, delay=delay, gaps=gaps)
                if n == 1 and loop:
                    # An action never detected even at the first, slowest rate is a gap in
                    # the rules or sensors, not a loss under load: reported, then left out
                    # of the loss count so the loop measures the rate.
                    gaps = frozenset(name for name, pa in r.per_action.items()
                                     if pa["expected"] and not pa["detected"])
                    if gaps:
                        report.say("never detected at the first rate (a detection gap, left "
                                   "out of the loss count): "
                                   + ", ".join(g.removeprefix("syscall.") for g in sorted(gaps)))
                        r = run_round(n, agent, feed, workers, runnable, marker, sleep=sleep,
                                      duration=round_duration, iterations=None, delay=delay,
                                      gaps=gaps)
                rounds.append(r)
                progress.advance(task)
                report.table(round_table(r))
                if not loop or r.lost > 0 or n >= max_rounds:
                    break
                if sleep == 0.0 or (r.eps < best * 1.05 and sleep * r.eps < 0.5):
                    break  # the rate no longer grows: the actions themselves are the limit
                best = max(best, r.eps)
                sleep = sleep / 2 if sleep > 2e-6 else 0.0
    finally:
        workers.close()
        sampler.stop()
    report.data["rss_over_time"] = sampler.points
    return rounds


def summarize(rounds: list[RoundResult], chosen: Sequence[act.Action], report: Report) -> None:
    ok = [r for r in rounds if r.lost == 0 and r.expected > 0]
    if ok:
        best = max(ok, key=lambda r: r.eps)
        report.say(f"last loss-free round: {best.round}; max EPS at 0 % loss: "
                   f"{best.eps:,.0f} actions/s, hooked syscalls {best.syscalls_per_s:,.0f}/s, "
                   f"agent CPU {best.agent_cpu_pct:.0f} %, RSS {best.agent_rss_mb:.0f} MB")
        report.data["max_loss_free_eps"] = best.eps
        report.data["max_loss_free_syscalls_per_s"] = best.syscalls_per_s
    else:
        report.say("no round was free of lost detections")
        report.data["max_loss_free_eps"] = None
    names = {a.name for a in chosen}
    if names == set(act.FALCO_STUDY) and ok:
        eps = max(r.eps for r in ok)
        verdict = "met" if eps >= TARGET_STUDY_EPS else "missed"
        report.say(f"target >= {TARGET_STUDY_EPS:,} loss-free EPS with the Falco study's three "
                   f"actions: {verdict} ({eps:,.0f})")
    missing = [a for a in chosen if a.sysward_rule is None]
    if missing:
        report.say("no sysward rule (run, not counted): "
                   + ", ".join(a.short for a in missing))
    skipped = [(a, a.missing()) for a in chosen if a.missing() is not None]
    for a, why in skipped:
        report.say(f"skipped {a.short}: {why}")
    summary = Table("rounds", ["round", "sleep us", "EPS", "expected", "detected", "lost %",
                               "agent CPU %", "RSS MB", "syscalls/s", "kernel lost",
                               "queue drops"])
    for r in rounds:
        summary.add(r.round, r.sleep_s * 1e6, r.eps, r.expected, r.detected, r.lost_pct,
                    r.agent_cpu_pct, r.agent_rss_mb, r.syscalls_per_s, r.kernel_lost,
                    r.queue_dropped)
    report.table(summary)
    report.data["rounds"] = [asdict(r) for r in rounds]
    rates = [r.eps for r in rounds]
    report.plot("eps_vs_lost.png", "Lost detections vs rate", "actions/s (EPS)", "lost %",
                {"sysward": (rates, [r.lost_pct for r in rounds])})
    report.plot("cpu_vs_eps.png", "Agent CPU vs rate", "actions/s (EPS)", "agent CPU %",
                {"sysward": (rates, [r.agent_cpu_pct for r in rounds])})
    pts = report.data.get("rss_over_time") or []
    report.plot("rss_over_time.png", "Agent RSS over the run", "s", "RSS MB",
                {"sysward": ([p[0] for p in pts], [p[1] for p in pts])}, marker="")


def list_table(chosen: Sequence[act.Action]) -> Table:
    t = Table("event-generator actions", ["action", "default", "where", "sysward rule",
                                          "Falco rule (file)", "status"])
    for a in chosen:
        why = a.missing()
        t.add(a.short, "yes" if a.default else "no", a.place, a.sysward_rule or "(none)",
              f"{a.falco_rule} ({a.falco_file})", f"skipped: {why}" if why else "runs")
    return t


def list_text(chosen: Sequence[act.Action]) -> str:
    """``--list``: one action per line, readable in a terminal of any width and in a pipe."""
    lines = []
    for a in chosen:
        why = a.missing()
        lines.append(
            f"{a.short}\n    default: {'yes' if a.default else 'no'}   where: {a.place}"
            f"   status: {('skipped: ' + why) if why else 'runs'}\n"
            f"    sysward rule: {a.sysward_rule or '(none in the default rules)'}\n"
            f"    Falco rule:   {a.falco_rule} ({a.falco_file})"
            + (f"\n    note: {a.note}" if a.note else ""))
    return "\n".join(lines)


# -- CLI ----------------------------------------------------------------------------------


def _common(f: Any) -> Any:
    for opt in reversed([
        click.option("--pid", type=int, default=None,
                     help="Pid of a running agent to measure (default: start one)."),
        click.option("--metrics", default=None, metavar="HOST:PORT",
                     help="With --pid: the agent's /metrics address."),
        click.option("--alerts", type=click.Path(path_type=Path), default=None,
                     help="With --pid: the agent's sqlite store or JSON lines alert file."),
        click.option("--rules", multiple=True, metavar="FILE|DIR",
                     help="Rules for the agent the bench starts (default: sysward's own)."),
        click.option("--out", type=click.Path(path_type=Path), default=None,
                     help="Output directory (default ./bench-out/<name>-<time>/)."),
        click.option("--trusted-delay", type=float, default=6.0, show_default=True,
                     help="How long the 'trusted' httpd runs before reading /etc/shadow."),
    ]):
        f = opt(f)
    return f


@click.command(name="generate")
@click.argument("pattern", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the actions and exit.")
@click.option("--all", "all_actions", is_flag=True,
              help="All actions, not only those the event generator runs by default.")
@click.option("--loop", is_flag=True, help="Rounds of rising rate until the first loss.")
@click.option("--sleep", type=float, default=0.1, show_default=True,
              help="Pause between actions in the first round, s (halved each round).")
@click.option("--round-duration", type=float, default=5.0, show_default=True,
              help="Length of a round, s.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Worker processes per place (host, container).")
@click.option("--max-rounds", type=int, default=MAX_ROUNDS, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Also write the rounds as JSON to this file.")
@_common
def generate_bench(pattern: str | None, list_only: bool, all_actions: bool, loop: bool,
                   sleep: float, round_duration: float, workers: int, max_rounds: int,
                   json_path: Path | None, pid: int | None, metrics: str | None,
                   alerts: Path | None, rules: tuple[str, ...], out: Path | None,
                   trusted_delay: float) -> None:
    """Falco event-generator actions against the agent, in rounds of rising rate.

    PATTERN is a regex over action names (e.g. 'ReadSensitive|WriteBelowBinaryDir').
    """
    chosen = act.select(pattern, all_actions=all_actions)
    console = bench_console()
    if list_only:
        click.echo(list_text(chosen))
        return
    if sleep < 0 or round_duration <= 0 or workers < 1:
        raise SyswardError("--sleep must be >= 0, --round-duration > 0 and --workers >= 1.")
    if json_path is not None:
        check_writable_file(json_path, "--json")
    report = Report("generate", out, console)
    report.data["actions"] = [a.name for a in chosen]
    with agent_for(report.outdir, pid, metrics, alerts, rules) as (agent, feed):
        rounds = run_generate(chosen, loop=loop, sleep=sleep, round_duration=round_duration,
                              delay=trusted_delay, workers_per_place=workers, agent=agent,
                              feed=feed, report=report, max_rounds=max_rounds)
    summarize(rounds, chosen, report)
    report.write()
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(report.data, option=orjson.OPT_INDENT_2, default=str))


@click.command(name="run")
@click.argument("action_names", nargs=-1, required=True, metavar="ACTION...")
@_common
def run_bench(action_names: tuple[str, ...], pid: int | None, metrics: str | None,
              alerts: Path | None, rules: tuple[str, ...], out: Path | None,
              trusted_delay: float) -> None:
    """Run actions once each and check that their alerts arrived (a detection self-test)."""
    chosen = act.resolve(action_names)
    for a in chosen:
        why = a.missing()
        if why:
            raise SyswardError(f"{a.short} cannot run here: {why}.")
    report = Report("run", out, bench_console())
    with agent_for(report.outdir, pid, metrics, alerts, rules) as (agent, feed):
        rounds = run_generate(chosen, loop=False, sleep=0.0, round_duration=3600.0,
                              delay=trusted_delay, workers_per_place=1, agent=agent,
                              feed=feed, report=report)
    r = rounds[0]
    report.data["rounds"] = [asdict(r)]
    report.write()
    failed = [n for n, pa in r.per_action.items()
              if pa["rule"] is not None and (pa["detected"] or 0) < (pa["expected"] or 0)]
    failed += [n for n, pa in r.per_action.items() if pa["runs"] == 0]
    if failed:
        raise SyswardError("no alert arrived for " + ", ".join(sorted(set(failed)))
                           + f"; see {report.outdir}/report.md.")
    click.echo("all detections arrived: "
               + ", ".join(f"{n.removeprefix('syscall.')} -> {pa['rule'] or '(no rule)'}"
                           for n, pa in r.per_action.items()))
