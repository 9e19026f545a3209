"""The agent: kernel reader -> decoder -> enrichment -> rules -> outputs, wired together.

Threads and queues (each arrow a bounded hand-over; nothing flows back upstream):

    reader thread:  ring buffer --(drain every drain_interval_ms)--> raw queue
    worker thread:  raw queue -> decode -> enrich -> rules -> Dispatcher.emit (per-output queues)
    main thread:    signals (TERM/INT stop, HUP reload), stats line, duration
    server thread:  /metrics and /healthz

The reader only copies records out of the ring buffer and never waits on the worker: when the
raw queue is full, a batch is dropped and counted (``sysward_queue_dropped_total``), so a slow
rule set shows up as a counted loss rather than a silent one in the kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from sysward.agent.drops import DropCounts, DropWatch
from sysward.agent.output_totals import OutputTotals
from sysward.agent.sensors import Sensor, TypeCounters, raise_reader_priority
from sysward.agent.stage_queue import StageQueue
from sysward.agent.stats import (
    Totals,
    discarder_samples,
    enforce_samples,
    final_report,
    kernel_samples,
    kernel_totals,
    output_samples,
    stats_line,
)
from sysward.agent.telemetry import Telemetry, queue_samples
from sysward.alert import Alert
from sysward.config import Config, config_to_dict, load_config
from sysward.enforce import Enforcer
from sysward.enforce.prefilter import Tables as PrefilterTables
from sysward.enforce.prefilter import build_tables, compile_approvers
from sysward.enforce.prefilter.abi import Setting
from sysward.enforce.prefilter.discarders import Discarders, Plan, compile_discarders
from sysward.enrich import Enricher, find_cgroup2_mount
from sysward.enrich.cri import open_watcher
from sysward.enrich.scope import Scope
from sysward.errors import SyswardError
from sysward.events.decoder import Decoder
from sysward.events.model import Event
from sysward.events.types import BY_NAME, EVENT_TYPES, GROUPS
from sysward.kernel.threadname import name_os_thread
from sysward.metrics import Sample, samples_from_stats
from sysward.outputs import Dispatcher, Output, build_outputs, reusable_outputs
from sysward.outputs.grouping import Grouper
from sysward.rules import LoadResult, RuleSet, alert_for, load_rules
from sysward.rules.fieldsets.container import container_alert_fields
from sysward.rules.packaged import PACKAGED_RULES_DIR

log = logging.getLogger("sysward")

DEFAULT_RULES_DIR = PACKAGED_RULES_DIR  # the packaged rules (sysward.rules.packaged)

#: How often the main loop compares the drop counters (a report is rate limited apart).
DROP_CHECK_S = 1.0

#: Rule-load warnings printed one by one at start; more are counted in one line.
MAX_WARNINGS_SHOWN = 5

#: How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
SWITCH_INTERVAL_S = 0.0005

#: SIGTERM to exit, all steps included (the issue asks for under 1 s).
SHUTDOWN_BUDGET_S = 0.8

#: How long a reload waits for the worker to take the new stages at a batch boundary.
RELOAD_SWAP_WAIT_S = 5.0

#: How long the outputs a reload replaced may take to deliver what they hold (they drain on
#: a thread of their own, next to the new outputs); what is left then is counted as dropped.
RETIRE_DRAIN_S = 60.0

#: Event types the process table needs whatever the rules say (ancestry, exe, cwd, exits).
ENRICHMENT_TYPES = frozenset(t.name for t in EVENT_TYPES if t.proctable)


def release_startup_memory() -> None:
    """Give back what loading rules and seeding the table left behind (YAML trees, ASTs,
    /proc reads): a collection, then glibc's malloc_trim (2-3 MB of the idle RSS)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def rule_paths(config: Config) -> list[Path]:
    paths = [DEFAULT_RULES_DIR] if config.rules_defaults else []
    paths.extend(Path(p) for p in config.rules)
    if not paths:
        raise SyswardError(
            "no rules to load: rules_defaults is false and no rules are configured; "
            "give --rules FILE|DIR or set rules_defaults: true."
        )
    return paths


def make_grouper(config: Config) -> Grouper | None:
    g = config.grouping
    return Grouper(g.window_s, g.max_groups) if g.enabled else None


def load_ruleset(config: Config) -> LoadResult:
    """Load the configured rules; any error is fatal here (one sentence, first error named),
    and so is a set without one rule to run (an empty directory, every rule disabled)."""
    paths = rule_paths(config)
    result = load_rules(paths, min_priority=config.min_priority)
    result.raise_for_errors()
    for p in paths:
        if p.is_dir() and not any(f.startswith(f"{p}/") for f in result.files):
            # other paths give rules, so going on is right; but this one adds nothing
            log.warning("rules directory %s holds no .yaml or .yml file; nothing was loaded "
                        "from it", p)
    if result.rules_loaded == 0:
        shown = ", ".join(str(p) for p in paths)
        if not result.files:
            why = "no .yaml or .yml file there"
        elif result.rules_total == 0:
            why = f"{len(result.files)} files but no rule in them"
        else:
            why = (f"{result.rules_total} rules, {result.rules_disabled} disabled and "
                   f"{len(result.rules_skipped)} skipped (below the minimum priority or of "
                   "another source)")
        raise SyswardError(f"no rule to run from {shown} ({why}); give --rules a file or "
                           "directory with rules, or check them with 'sysward rules check'.")
    return result


def log_rule_warnings(result: LoadResult) -> None:
    for diag in result.warnings[:MAX_WARNINGS_SHOWN]:
        log.warning("%s", diag)
    more = len(result.warnings) - MAX_WARNINGS_SHOWN
    if more > 0:
        log.warning("%d more rule warnings; 'sysward rules check' lists every one", more)


def log_decisions(ruleset: RuleSet, attach: list[str]) -> None:
    """-v: which rules each event type meets (what the kernel must deliver, and why)."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    for t in attach:
        names = [r.name for r in ruleset.rules_for_type(t)]
        why = f"{len(names)} rules: {', '.join(names)}" if names else \
            "no rule: the process table needs it" if t in ENRICHMENT_TYPES else "no rule"
        log.debug("event type %s: %s", t, why)


#: fields whose value the kernel derives from other events: the open family's programs note
#: the inodes opened for writing that an exec then looks up (bpf/sysward.bpf.c note_written)
WRITE_TRACKING_FIELDS = ("proc.exe_written", "proc.exe_writer")


def kernel_types(ruleset: RuleSet) -> tuple[list[str], list[str]]:
    """(types to attach, types the rules name that sysward does not capture)."""
    wanted = set(ruleset.event_types) | ENRICHMENT_TYPES
    if any(ruleset.field_args(f) for f in WRITE_TRACKING_FIELDS):
        # attached for the kernel's own bookkeeping: with no rule on opens their
        # approvers reject every event, so none reaches user space
        wanted |= set(GROUPS["open"])
    attach = sorted(t for t in wanted if t in BY_NAME)
    unsupported = sorted(t for t in ruleset.event_types if t not in BY_NAME)
    return attach, unsupported


def env_keys(ruleset: RuleSet) -> frozenset[str] | None:
    """What of a process's environment the process table must keep for these rules: the
    variables they name (``proc.env[LD_PRELOAD]``), None for all of it when one reads
    ``proc.env`` whole, nothing when none reads it."""
    args = ruleset.field_args("proc.env")
    if None in args:
        return None
    return frozenset(a for a in args if a is not None)


def needs_env(ruleset: RuleSet) -> bool:
    """Whether the kernel must read the environment at exec for these rules."""
    return env_keys(ruleset) != frozenset()


#: A dispatcher a reload replaced, and its outputs the new dispatcher does not use.
_Draining = tuple[Dispatcher, list[Output]]


@dataclass(slots=True)
class _Stages:
    """What a reload replaces, made before the swap: the rules, the enforcer (None: no
    enforcement), the dispatcher (None: the outputs are unchanged and kept)."""

    result: LoadResult
    enforcer: Enforcer | None
    dispatcher: Dispatcher | None
    config: Config  # what the dispatcher was built from
    applied: threading.Event = field(default_factory=threading.Event)
    #: the discarders to learn into from the swap on (those of a new sensor, or the running
    #: ones, suspended by the reload) and the proofs of the new rules
    discarders: Discarders | None = None
    discarder_plan: Plan | None = None


class Agent:
    """One running agent; ``run()`` blocks until stopped, then tears everything down."""

    def __init__(self, config: Config, config_path: str | None = None,
                 overrides: dict[str, Any] | None = None, output_specs: list[str] | None = None,
                 err: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._config_path = config_path
        self._overrides = dict(overrides or {})
        self._output_specs = list(output_specs or [])
        self._err = err or (lambda line: print(line, file=sys.stderr, flush=True))
        self.hostname = config.effective_hostname
        self.rules_result = load_ruleset(config)
        self.ruleset = self.rules_result.ruleset
        self.enforcer = self._make_enforcer(config, self.ruleset)
        self.dispatcher: Dispatcher = build_outputs(config)
        self._dispatcher_config = config  # what the running outputs were built from
        self.grouper = make_grouper(config)
        self.decoder = Decoder()
        self.raw_queue: StageQueue[bytes] = StageQueue("raw", config.pipeline.queue_size)
        # the CRI runtime (containerd, CRI-O) is asked about containers from its own thread
        self.cri, self.cri_status = open_watcher(config.cri, config.filters,
                                                 find_cgroup2_mount())
        pt = config.process_table
        self.enricher = Enricher(max_processes=pt.max_processes, exit_grace_s=pt.exit_grace_s,
                                 max_bytes=pt.max_mb << 20, max_argv_bytes=pt.max_argv_bytes,
                                 max_env_bytes=pt.max_env_bytes,
                                 env_keys=env_keys(self.ruleset), seed_from_proc=True,
                                 cri=self.cri)
        self.sensor: Sensor | None = None
        #: learned paths no rule can match, written into the sensor's map (None: off)
        self.discarders: Discarders | None = None
        self.telemetry = Telemetry()
        self._server: Any = None
        self._reader: Any = None
        self._stop = threading.Event()
        self._reload_requested = False
        self._swap: tuple[Sensor, Any] | None = None
        self._staged: _Stages | None = None  # a reload's stages, for the worker to take
        self._stage_lock = threading.Lock()
        # what the worker replaced when it took a reload's stages, for the main thread to close
        self._replaced: list[tuple[Enforcer | None, _Draining | None]] = []
        # Dispatchers a reload replaced, with their outputs the new one does not use: those
        # drain on their own threads, still counted; once closed, their counters are folded
        # into _outputs_carried (counters never go back).
        self._outputs_lock = threading.Lock()
        self._outputs_draining: list[_Draining] = []
        self._outputs_carried = OutputTotals()
        self._drainers: list[threading.Thread] = []
        self._reader_done = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_drain = time.monotonic()
        # worker counters (plain ints: the telemetry thread reads them at scrape time)
        self.events_processed = 0
        self.rule_matches = 0
        self.eval_seconds = 0.0
        self.reloads = 0
        self.shutdown_dropped = 0  # queued events the shutdown deadline left unevaluated
        self._drain_deadline = 0.0
        self.reload_failures = 0
        self._final_kernel: dict[str, TypeCounters] = {}
        self._final_enforce: dict[str, int] = {}
        # Counters of sensors a reload replaced: the kernel's counters start at 0 in a new
        # object, and the totals must not go backwards (they are Prometheus counters).
        self._retired_kernel: dict[str, TypeCounters] = {}
        self._kernel_lock = threading.Lock()
        self.drops = DropWatch()
        log_rule_warnings(self.rules_result)

    # -- start / stop ------------------------------------------------------------------------
    def start(self) -> None:
        # Every thread but the worker mostly waits on I/O, and each time it gets the GIL back
        # it can wait a whole switch interval while the worker evaluates rules: with Python's
        # 5 ms, a webhook output managed 78 alerts/s next to a busy worker, 473/s with 0.5 ms
        # (the reader, the outputs and shutdown all gain the same way).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        attach, unsupported = kernel_types(self.ruleset)
        if unsupported:
            log.warning("the rules name %d event types sysward does not capture (they never "
                        "match): %s", len(unsupported), ", ".join(unsupported))
        log_decisions(self.ruleset, attach)
        if self.enforcer is not None:
            # Enforcement first: a rule that must stop something is in force before the
            # first event is reported.
            self.enforcer.start()
            for warning in self.enforcer.warnings:
                log.warning("%s", warning)
        self.sensor = self._make_sensor(attach, self.ruleset)
        try:
            self.sensor.start()
        except BaseException:
            if self.enforcer is not None:
                self.enforcer.close()
            raise
        self.discarders = self._make_discarders(self.sensor, self.ruleset)
        if self.cri is not None:
            if self.sensor.scope_cgroups:
                self.cri.set_kernel_map(self.sensor.scope_map())
            self.cri.start()
        try:
            # Processes that started between the first /proc scan and the attach.
            self.enricher.seed()
            self._reader = self.sensor.ring_buffer(self._on_records)
            self._start_server()
        except BaseException:
            self.sensor.close()
            if self.enforcer is not None:
                self.enforcer.close()
            raise
        self._log_sensor(self.sensor)
        release_startup_memory()
        self._threads = [
            threading.Thread(target=self._reader_loop, name="sysward-reader", daemon=True),
            threading.Thread(target=self._worker_loop, name="sysward-worker", daemon=True),
        ]
        for t in self._threads:
            t.start()
        self._err(
            f"sysward: running with {self.rules_result.rules_loaded} rules, "
            f"{len(self.sensor.active)} event types attached"
            + (f" ({', '.join(self.sensor.missing)} missing on this kernel)"
               if self.sensor.missing else "")
            + (f"; enforcement {self.config.enforce.mode} for "
               f"{len(self.enforcer.enforced_rules)} rules"
               if self.enforcer is not None else "")
            + (f"; metrics on {self._server.url}/metrics" if self._server is not None else "")
            + f"; {self.cri_status}"
        )

    def _start_server(self) -> None:
        tel = self.telemetry
        tel.add_source(lambda: kernel_samples(self.kernel_counters()))
        tel.add_source(lambda: queue_samples(self.raw_queue))
        tel.add_source(self.enricher.samples)
        tel.add_source(self._pipeline_samples)
        tel.add_source(lambda: discarder_samples(self.discarders))
        tel.add_source(lambda: output_samples(self.output_totals()))
        tel.add_source(lambda: enforce_samples(
            self.enforcer.counters() if self.enforcer is not None else {}))
        if self.config.server.enabled:
            self._server = tel.serve(self.config.server.listen, health=self.health)

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload_requested = True

    def run(self, duration: float | None = None) -> int:
        """Run until SIGTERM/SIGINT or ``duration`` seconds; returns the exit code."""
        old = self._install_signals()
        try:
            try:
                self.start()
            except BaseException:
                # start() released the kernel side; nothing ran, so no counters to print
                self.dispatcher.close(self.config.outputs.close_timeout_s)
                raise
            self._run_loop(duration)
        finally:
            self._restore_signals(old)
        return 0

    def _run_loop(self, duration: float | None) -> None:
        try:
            deadline = None if not duration else time.monotonic() + duration
            interval = self.config.stats_interval_s
            next_stats = time.monotonic() + interval if interval > 0 else None
            last = self.totals()
            next_drop_check = time.monotonic() + DROP_CHECK_S
            while not self._stop.is_set():
                now = time.monotonic()
                waits = [0.2]
                if deadline is not None:
                    if now >= deadline:
                        break
                    waits.append(deadline - now)
                if next_stats is not None:
                    if now >= next_stats:
                        last = self._print_stats(last, interval)
                        next_stats += interval
                    waits.append(max(0.0, next_stats - now))
                if self._reload_requested:
                    self._reload_requested = False
                    self.reload()
                self._retire_replaced()
                if now >= next_drop_check:
                    next_drop_check = now + DROP_CHECK_S
                    self.check_drops()
                self._stop.wait(min(waits))
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop reading, detach, drain the queue through the rules, flush the outputs.

        Everything runs against one deadline (SHUTDOWN_BUDGET_S): what the worker cannot
        evaluate before it is counted as ``shutdown_dropped``, never silently lost.
        """
        t0 = time.monotonic()
        deadline = t0 + SHUTDOWN_BUDGET_S
        if self.sensor is not None:
            # No new events from here on (calls now count as filtered), so the reader's last
            # drain takes everything the kernel submitted and nothing is left behind unread.
            try:
                self.sensor.set_enabled([])
            except SyswardError as exc:
                log.warning("could not switch the sensors off before the last drain: %s", exc)
        self._stop.set()
        if self._threads:
            self._reader_done.wait(0.25)  # the reader makes its last drain, then stops
        sensor, self.sensor = self.sensor, None
        if sensor is not None:
            try:
                self._final_kernel = self._with_retired(sensor.counters())
            except SyswardError:
                self._final_kernel = dict(self._retired_kernel)
            if self._reader is not None:
                self._reader.close()
            sensor.close(hand_off=True)
        # the worker evaluates what is queued until the deadline leaves only enough time for
        # the outputs, then counts the rest
        self._drain_deadline = deadline - self.config.outputs.close_timeout_s
        self.raw_queue.close()
        for t in self._threads[1:]:
            t.join(max(0.05, self._drain_deadline - time.monotonic() + 0.05))
        self._close_groups(final=True)
        self._take_staged()  # a reload the worker did not take before it stopped
        self._retire_replaced()
        # the outputs still draining after a reload share the exit deadline with the others
        with self._outputs_lock:
            draining = list(self._outputs_draining)
        for _, own in draining:
            for output in own:
                output.begin_close(deadline)
        if self.enforcer is not None:
            # after the worker: it asks the enforcer what was done for the last alerts
            self._final_enforce = self.enforcer.counters()
            self.enforcer.close(hand_off=True)
        self.dispatcher.close(max(0.05, min(self.config.outputs.close_timeout_s,
                                            deadline - time.monotonic())))
        for t in self._drainers:
            t.join(max(0.0, deadline - time.monotonic()))
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.cri is not None:
            self.cri.close()
        self._print_final(time.monotonic() - t0)

    # -- threads -----------------------------------------------------------------------------
    def _on_records(self, batch: list[bytes]) -> None:
        self.raw_queue.put_batch(batch)

    def _reader_loop(self) -> None:
        reader = self._reader
        drain_ms = self.config.kernel.drain_interval_ms
        name_os_thread("sw-reader")
        raise_reader_priority()  # a starved reader lets the ring overflow under load
        try:
            while not self._stop.is_set():
                reader.poll(drain_ms)
                self.last_drain = time.monotonic()
                if self._swap is not None:
                    reader = self._switch_reader(reader)
            reader.drain()
        except SyswardError as exc:
            log.error("ring buffer reader stopped: %s", exc)
        finally:
            self._reader_done.set()

    def _switch_reader(self, old_reader: Any) -> Any:
        swap, self._swap = self._swap, None
        assert swap is not None
        new_sensor, new_reader = swap
        old_reader.drain()
        old_sensor = self.sensor
        with self._kernel_lock:
            if old_sensor is not None:
                try:
                    self._retired_kernel = self._with_retired(old_sensor.counters())
                except SyswardError as exc:
                    log.warning("the counters of the replaced sensor were lost: %s", exc)
            self.sensor, self._reader = new_sensor, new_reader
        log.debug("reload: the reader moved to the new programs; the old ones are released")
        old_reader.close()
        if old_sensor is not None:
            old_sensor.close(hand_off=True)  # the reader must not stall on the kernel
        return new_reader

    def _worker_loop(self) -> None:
        q = self.raw_queue
        decode = self.decoder.decode_batch
        name_os_thread("sw-worker")
        while True:
            if self._staged is not None:  # a reload's new stages, taken between two batches
                self._take_staged()
            batch = q.get_batch(0.2)
            if batch is None:
                if q.closed:
                    return
                self._close_groups()
                continue
            if self._drain_deadline and time.monotonic() > self._drain_deadline:
                self.shutdown_dropped += len(batch) + q.discard()
                continue
            t0 = time.perf_counter()
            self.process_events(decode(batch))
            self.eval_seconds += time.perf_counter() - t0

    def process_events(self, events: Iterable[Event]) -> None:
        """Enrichment, rules and alerts for a batch of decoded events (the hot path).

        The batch's alerts go to the dispatcher in one call at its end (one lock round-trip
        per output; the encoding is left to the output threads), also when an event raises.
        """
        enrich = self.enricher.process
        match = self.ruleset.match
        dispatcher = self.dispatcher
        host = self.hostname
        enforcer = self.enforcer
        grouper = self.grouper
        containers = self.enricher.containers
        scoped = containers.cri is not None and containers.cri.scope.active
        disc = self.discarders
        learning = disc.learning if disc is not None else frozenset()
        alerts: list[Alert] = []
        held: list[bool] = []
        n = matches = 0
        try:
            for ev in events:
                n += 1
                enrich(ev)
                if scoped and containers.out_of_scope(ev):
                    continue
                fired = match(ev)
                if not fired and ev.type in learning:
                    assert disc is not None
                    disc.learn(ev)
                if fired:
                    containers.note_alert(ev)
                    for rule in fired:
                        matches += 1
                        alert = alert_for(rule, ev, host)
                        container_alert_fields(ev, alert.output_fields)
                        if enforcer is not None and rule.action != "alert":
                            enforcer.annotate(alert, rule, ev)
                        alerts.append(alert)
                        held.append(grouper is not None
                                    and grouper.admit(alert, ev, rule.action != "alert"))
        finally:
            if alerts:
                dispatcher.emit_batch(alerts, held if grouper is not None else None)
            self.events_processed += n
            self.rule_matches += matches
        if grouper is not None and matches:
            self._close_groups()

    def _close_groups(self, final: bool = False) -> None:
        """Send the summaries of the alert groups whose window is over (all at shutdown)."""
        if self.grouper is None:
            return
        summaries = self.grouper.flush() if final else self.grouper.expired(time.time_ns())
        for alert in summaries:
            self.dispatcher.emit(alert)

    # -- reload ------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read config and rules; on any error keep running with the current set.

        Everything new is made first (rules, outputs when their settings changed, the
        enforcer, the kernel's event types); a failure at any step releases what the earlier
        steps made and keeps the running set.  The worker then takes the new stages between
        two batches (``_take_staged``), so the alerts of the batch it is evaluating go to the
        dispatcher that was current when the batch began, which is closed only after that.
        """
        from sysward.config import apply_output_specs

        made: list[Callable[[], None]] = []  # how to release what this reload made so far
        try:
            log.debug("reload: reading the configuration (%s)", self._config_path or "defaults")
            config = load_config(self._config_path, self._overrides)
            apply_output_specs(config, self._output_specs)
            log.debug("reload: loading rules from %s",
                      ", ".join(str(p) for p in rule_paths(config)))
            result = load_ruleset(config)
            log.debug("reload: %d rules loaded, %d warnings", result.rules_loaded,
                      len(result.warnings))
            log_rule_warnings(result)
            dispatcher: Dispatcher | None = None
            if config_to_dict(config.outputs) != config_to_dict(self.config.outputs) or \
                    config.min_priority != self.config.min_priority or \
                    config_to_dict(config.rate_limit) != config_to_dict(self.config.rate_limit):
                # outputs whose own settings are unchanged go on as they are
                dispatcher = build_outputs(config, reusable_outputs(
                    self.dispatcher, self._dispatcher_config, config))
                made.append(lambda: self._close_unused(dispatcher))
            enforcer = self._make_enforcer(config, result.ruleset)
            if enforcer is not None and self.sensor is not None:
                enforcer.start()
            if enforcer is not None:
                made.append(enforcer.close)
            attach, _ = kernel_types(result.ruleset)
            log_decisions(result.ruleset, attach)
            staged_disc: tuple[Discarders | None, Plan | None] = (None, None)
            if self.sensor is not None:
                # No discarder proved under the old rules may reject an event the new ones
                # could match: all are removed before the kernel's tables change, and none
                # is learned until the worker evaluates with the new rules.
                if self.discarders is not None:
                    self.discarders.suspend()
                    made.append(self._resume_discarders)
                self._retarget_sensor(attach, result.ruleset)
                staged_disc = self._next_discarders(config, result.ruleset)
        except SyswardError as exc:
            for release in reversed(made):
                release()
            self.reload_failures += 1
            self._err(f"sysward: reload failed, keeping the running rules and outputs: {exc}")
            return False
        if dispatcher is not None:
            log.debug("reload: outputs rebuilt (%s)",
                      ", ".join(o.name for o in dispatcher.all_outputs))
        else:
            log.debug("reload: outputs unchanged, kept")
        if self.cri is not None:
            # (the kernel's part follows a scope that was off at start with the next sensor)
            self.cri.set_scope(Scope.from_config(config.filters))
        self._swap_stages(_Stages(result, enforcer, dispatcher, config,
                                  discarders=staged_disc[0], discarder_plan=staged_disc[1]))
        if config_to_dict(config.grouping) != config_to_dict(self.config.grouping):
            # open groups of the old settings are dropped (their first alerts went out)
            self.grouper = make_grouper(config)
        self.config = config
        # processes exec'd from now on keep what the new rules read of their environment
        self.enricher.set_env_keys(env_keys(result.ruleset))
        self.reloads += 1
        self._err(f"sysward: reloaded {result.rules_loaded} rules")
        return True

    def _swap_stages(self, stages: _Stages) -> None:
        """Hand the new stages to the worker (at its next batch boundary) and close the old
        ones once it took them; with no worker running, apply them here."""
        with self._stage_lock:
            earlier, self._staged = self._staged, stages
        if earlier is not None:
            # a previous reload the worker never took: nothing went through its stages
            self._release_unapplied(earlier)
        worker = self._threads[1] if len(self._threads) > 1 else None
        deadline = time.monotonic() + RELOAD_SWAP_WAIT_S
        while not stages.applied.is_set():
            if worker is None or not worker.is_alive():
                self._take_staged()
            elif time.monotonic() > deadline:
                # the worker is inside a long batch; it takes the stages at the end of it,
                # and the main loop closes the replaced ones then
                log.warning("reload: the worker has not reached a batch boundary in %.0f s; "
                            "the new rules apply after its current batch", RELOAD_SWAP_WAIT_S)
                return
            else:
                stages.applied.wait(0.05)
        self._retire_replaced()

    def _take_staged(self) -> None:
        """Make a reload's stages current, if one is waiting; the worker calls it between
        batches, so no alert of a batch in flight meets a dispatcher being closed."""
        with self._stage_lock:
            stages, self._staged = self._staged, None
        if stages is None:
            return
        old_enforcer: Enforcer | None = self.enforcer
        old_dispatcher: _Draining | None = None
        self.rules_result, self.ruleset = stages.result, stages.result.ruleset
        self.enforcer = stages.enforcer
        if stages.discarders is not None and stages.discarder_plan is not None:
            stages.discarders.resume(stages.discarder_plan)
        self.discarders = stages.discarders
        if stages.dispatcher is not None:
            self._close_groups(final=True)  # the summaries go out through the old outputs
            kept = stages.dispatcher.all_outputs
            with self._outputs_lock:  # counted all along: draining, then folded in
                old = self.dispatcher
                old_dispatcher = (old, [o for o in old.all_outputs
                                        if not any(o is k for k in kept)])
                self._outputs_draining.append(old_dispatcher)
                self.dispatcher = stages.dispatcher
                self._dispatcher_config = stages.config
        with self._stage_lock:
            self._replaced.append((old_enforcer, old_dispatcher))
        stages.applied.set()

    def _release_unapplied(self, stages: _Stages) -> None:
        if stages.enforcer is not None:
            stages.enforcer.close()
        if stages.dispatcher is not None:
            self._close_unused(stages.dispatcher)

    def _close_unused(self, dispatcher: Dispatcher) -> None:
        """Close the outputs of a dispatcher that never ran but those the running one uses
        (nothing was emitted to it)."""
        running = self.dispatcher.all_outputs
        for output in dispatcher.all_outputs:
            if not any(output is r for r in running):
                output.close(self.config.outputs.close_timeout_s)

    def _retire_replaced(self) -> None:
        """Close what the worker replaced: the enforcer at once; the dispatcher drains what
        its outputs still hold on a thread of its own (RETIRE_DRAIN_S at most, cut short by
        shutdown), so a reload loses no alert and never waits for a slow sink."""
        with self._stage_lock:
            replaced, self._replaced = self._replaced, []
        for enforcer, dispatcher in replaced:
            if enforcer is not None:
                enforcer.close()
            if dispatcher is not None:
                t = threading.Thread(target=self._drain_replaced, args=dispatcher,
                                     name="sysward-out-retire", daemon=True)
                self._drainers = [d for d in self._drainers if d.is_alive()] + [t]
                t.start()

    def _drain_replaced(self, dispatcher: Dispatcher, own: list[Output]) -> None:
        """Let the outputs only the replaced dispatcher had deliver what they hold, close
        them (all in parallel, within RETIRE_DRAIN_S), then fold their counters in."""
        deadline = time.monotonic() + RETIRE_DRAIN_S
        for output in own:
            output.begin_close(deadline)
        for output in own:
            output.close(max(0.0, deadline - time.monotonic()))
        with self._outputs_lock:
            self._outputs_draining = [d for d in self._outputs_draining if d[0] is not dispatcher]
            self._outputs_carried.add_dispatcher(dispatcher)
            for output in own:
                self._outputs_carried.add_output(output, gauges=False)

    def output_totals(self) -> OutputTotals:
        """Alert and output counters since the agent started: every dispatcher, and every
        output once (a reload's dispatchers share the outputs it kept)."""
        with self._outputs_lock:
            totals = self._outputs_carried.copy()
            live: dict[int, Output] = {}
            for dispatcher, own in self._outputs_draining:
                totals.add_dispatcher(dispatcher)
                live.update((id(o), o) for o in own)
            totals.add_dispatcher(self.dispatcher)
            live.update((id(o), o) for o in self.dispatcher.all_outputs)
            for output in live.values():
                totals.add_output(output)
        return totals

    def _retarget_sensor(self, attach: list[str], ruleset: RuleSet) -> None:
        """Make the kernel report exactly ``attach`` without a gap in the stream.

        Types whose programs are attached already are switched in the kernel's enable map.
        New types need new programs, and a change of ``capture_env`` (a load-time setting)
        a new load: a second sensor is started first and the reader thread moves over to it
        at its next drain, closing the old one after a last drain, so events may be seen
        twice for a few milliseconds but none are missed.
        """
        # A swap of the previous reload not taken yet (the reader takes it at its next
        # drain, within milliseconds): wait for it, or its new sensor would never be closed.
        deadline = time.monotonic() + 1.0
        while self._swap is not None and self._reader_thread_alive() and \
                time.monotonic() < deadline:
            time.sleep(0.005)
        if self._swap is not None:
            raise SyswardError("the reader has not taken the programs of the previous reload "
                               "yet; send SIGHUP again in a moment.")
        sensor = self.sensor
        assert sensor is not None
        active = {et.name for et in sensor.active}
        capture_env = needs_env(ruleset)
        if set(attach) <= active | set(sensor.missing) and capture_env == sensor.capture_env:
            tables = self._prefilter_tables(ruleset, [et.name for et in sensor.active])
            if tables is not None:
                sensor.set_prefilter(tables)
            enabled = [t for t in attach if t in active]
            sensor.set_enabled(enabled)
            log.debug("reload: no new event type; %d of the %d attached types switched on in "
                      "the kernel's enable map", len(enabled), len(active))
            return
        log.debug("reload: new event types %s or environment capture %s: starting a second "
                  "sensor", ", ".join(sorted(set(attach) - active - set(sensor.missing))),
                  "on" if capture_env else "off")
        new = self._make_sensor(attach, ruleset)
        new.start()
        self._log_sensor(new)
        try:
            if self.cri is not None and new.scope_cgroups:
                self.cri.set_kernel_map(new.scope_map())
            reader = new.ring_buffer(self._on_records)
        except BaseException:
            new.close()
            raise
        self._swap = (new, reader)

    def _make_discarders(self, sensor: Sensor, ruleset: RuleSet,
                         config: Config | None = None) -> Discarders | None:
        """The discarders of ``sensor`` for ``ruleset`` (None: off, or nothing can learn)."""
        cfg = (config or self.config).kernel
        if not (cfg.prefilter and cfg.discarders) or sensor.prefilter is None or \
                sensor.prefilter_setting != Setting.ON:
            return None
        keys, on = sensor.discarder_maps()
        return Discarders(self._discarder_plan(ruleset, sensor), keys, on,
                          capacity=sensor.discarders_max)

    @staticmethod
    def _discarder_plan(ruleset: RuleSet, sensor: Sensor) -> Plan:
        return compile_discarders(ruleset.rules, [et.name for et in sensor.active])

    def _next_discarders(self, config: Config,
                         ruleset: RuleSet) -> tuple[Discarders | None, Plan | None]:
        """After a reload's retarget: the discarders to use once the worker has the new rules
        (a new sensor gets its own, the counts carried over)."""
        cfg = config.kernel
        if not (cfg.prefilter and cfg.discarders):
            return None, None
        if self._swap is not None:
            new_sensor = self._swap[0]
            made = self._make_discarders(new_sensor, ruleset, config)
            if made is not None and self.discarders is not None:
                made.stats = self.discarders.stats
                made.stats.live = 0
            return made, made.plan if made is not None else None
        if self.discarders is None:
            assert self.sensor is not None
            made = self._make_discarders(self.sensor, ruleset, config)
            return made, made.plan if made is not None else None
        assert self.sensor is not None
        return self.discarders, self._discarder_plan(ruleset, self.sensor)

    def _resume_discarders(self) -> None:
        """A failed reload: learn again under the running rules."""
        if self.discarders is not None:
            self.discarders.resume(self.discarders.plan)

    def _prefilter_tables(self, ruleset: RuleSet, attach: list[str]) -> PrefilterTables | None:
        """The approvers of the attached types as kernel tables (None: kernel.prefilter off)."""
        if not self.config.kernel.prefilter:
            return None
        return build_tables(compile_approvers(ruleset.rules, attach))

    @staticmethod
    def _log_sensor(sensor: Sensor) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        log.debug("programs attached for %d event types: %s", len(sensor.active),
                  ", ".join(et.name for et in sensor.active))
        if sensor.missing:
            log.debug("no tracepoint on this kernel for: %s", ", ".join(sensor.missing))
        if sensor.prefilter is None:
            prefilter = "no prefilter"
        elif sensor.prefilter_setting == Setting.AUDIT:
            prefilter = "the prefilter of the rules' approvers in audit mode (drops nothing)"
        else:
            prefilter = "the prefilter of the rules' approvers drops what no rule can match"
        log.debug("kernel filters: the agent's own pid %d; %s; %s; %s", sensor.self_pid,
                  prefilter,
                  f"ignored commands {', '.join(sensor.ignore_comms)}"
                  if sensor.ignore_comms else "no ignored commands",
                  "container processes only" if sensor.containers_only
                  else "host and container processes")
        log.debug("environment of execs: %s", "captured" if sensor.capture_env
                  else "not captured (no loaded rule reads proc.env)")

    def _reader_thread_alive(self) -> bool:
        return bool(self._threads) and self._threads[0].is_alive()

    def _make_sensor(self, attach: list[str], ruleset: RuleSet) -> Sensor:
        kcfg, filters = self.config.kernel, self.config.filters
        return Sensor(attach, ringbuf_bytes=kcfg.ringbuf_mb << 20,
                      wake_fraction=kcfg.wakeup_fraction, ignore_comms=filters.ignore_comms,
                      containers_only=filters.containers_only,
                      scope_cgroups=self.cri is not None and self.cri.scope.active,
                      capture_env=needs_env(ruleset),
                      prefilter=self._prefilter_tables(ruleset, attach),
                      discarders_max=kcfg.discarders_max)

    @staticmethod
    def _make_enforcer(config: Config, ruleset: RuleSet) -> Enforcer | None:
        e = config.enforce
        return Enforcer.from_rules(ruleset, config, cgroup=e.cgroup or None,
                                   alert_only_unenforceable=e.alert_only_unenforceable)

    # -- health, counters --------------------------------------------------------------------
    def health(self) -> tuple[bool, str]:
        if self.sensor is None:
            return False, "programs are not attached"
        if not self._threads or not all(t.is_alive() for t in self._threads):
            return False, "a pipeline thread has stopped"
        lag = time.monotonic() - self.last_drain
        if lag > 2.0:
            return False, f"the ring buffer has not been drained for {lag:.1f}s"
        dropping = self.drops.dropping()
        if dropping is not None:
            return True, dropping  # still serving, but coverage is being lost
        return True, "ok"

    def kernel_counters(self) -> dict[str, TypeCounters]:
        """Per type, since the agent started: the running sensor's plus those it replaced."""
        with self._kernel_lock:
            sensor = self.sensor
            if sensor is None:
                return self._final_kernel
            try:
                return self._with_retired(sensor.counters())
            except SyswardError:
                return dict(self._retired_kernel)

    def _with_retired(self, current: dict[str, TypeCounters]) -> dict[str, TypeCounters]:
        out: dict[str, TypeCounters] = {}
        for counters in (self._retired_kernel, current):
            for name, c in counters.items():
                total = out.setdefault(name, TypeCounters())
                total += c  # every field of TypeCounters, whatever it holds
        return out

    def drop_counts(self) -> DropCounts:
        kernel = self.kernel_counters()
        lost = sum(c.lost for c in kernel.values())
        # dropped (queue full) and failed (the sink refused, retries spent): both lost
        outputs = {name: s.get("dropped", 0) + s.get("failed", 0)
                   for name, s in self.output_totals().outputs.items()}
        return DropCounts(kernel=lost, queue=self.raw_queue.dropped_total,
                          decoder=self.decoder.errors, outputs=outputs,
                          events=sum(c.submitted for c in kernel.values()) + lost)

    def check_drops(self) -> None:
        """Report drops while they happen: stderr, an internal alert, /healthz."""
        report = self.drops.check(self.drop_counts())
        if report is None:
            return
        self._err(report.warning())
        self.dispatcher.emit(report.alert(self.hostname))

    def totals(self) -> Totals:
        user_drops = self.raw_queue.dropped_total + self.decoder.errors + self.shutdown_dropped
        return kernel_totals(self.kernel_counters(), user_drops)

    def _pipeline_counters(self) -> dict[str, int]:
        return {
            "read": self._reader.records if self._reader else 0,
            "queue_dropped": self.raw_queue.dropped_total,
            "shutdown_dropped": self.shutdown_dropped,
            "decode_errors": self.decoder.errors,
            "events": self.events_processed,
            "matches": self.rule_matches,
            "eval_errors": self.ruleset.eval_errors,
        }

    def _pipeline_samples(self) -> list[Sample]:
        p = self._pipeline_counters()
        values: dict[str, float] = {
            "sysward_reader_records_total": p["read"],
            "sysward_decoder_events_total": self.decoder.decoded,
            "sysward_decoder_errors_total": p["decode_errors"],
            "sysward_agent_shutdown_dropped_total": p["shutdown_dropped"],
            "sysward_rules_events_total": p["events"],
            "sysward_rules_matches_total": p["matches"],
            "sysward_rules_eval_errors_total": p["eval_errors"],
            "sysward_rules_eval_seconds_total": self.eval_seconds,
            "sysward_agent_reloads_total": self.reloads,
            "sysward_agent_drop_reports_total": self.drops.reports,
            "sysward_agent_reload_failures_total": self.reload_failures,
            "sysward_rules_loaded": len(self.ruleset),
        }
        corr = self.ruleset.correlation_stats()
        values["sysward_rules_correlation_keys"] = corr["keys"]
        values["sysward_rules_correlation_evicted_total"] = corr["evicted"]
        values["sysward_rules_correlation_fired_total"] = corr["fired"]
        return samples_from_stats(values)

    def _print_stats(self, last: Totals, interval: float) -> Totals:
        now = self.totals()
        self._err(stats_line(now, last, interval, self.output_totals()))
        return now

    def _print_final(self, shutdown_s: float) -> None:
        self._err(final_report(self._final_kernel, self._pipeline_counters(),
                               self.enricher.stats(), self.output_totals(), self._final_enforce,
                               shutdown_s, self.discarders))

    # -- signals -----------------------------------------------------------------------------
    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.request_reload()

        old: dict[int, Any] = {}
        for sig, fn in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop),
                        (signal.SIGHUP, on_hup)):
            old[sig] = signal.signal(sig, fn)
        return old

    @staticmethod
    def _restore_signals(old: dict[int, Any]) -> None:
        for sig, fn in old.items():
            signal.signal(sig, fn)

