"""Metric samples and the one registry of metric names: what /metrics can serve.

A stage keeps its counters as plain ints and turns them into ``Sample``s when /metrics is read
(sysward.agent.telemetry serves them).  Every name a stage may report is declared here once,
with its kind, help text and labels; the telemetry refuses (and counts as a source error) a
sample whose name is not in ``METRICS``, and docs/metrics.md must list every entry (a unit
test reads this registry).  This module depends on nothing but the standard library, so
every stage can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

Kind = Literal["counter", "gauge"]


class Sample(NamedTuple):
    name: str  # sysward_<stage>_<what>_total for counters
    labels: dict[str, str]
    value: float
    kind: Kind
    help: str


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric /metrics can serve."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()

    def sample(self, value: float, labels: dict[str, str] | None = None) -> Sample:
        return Sample(self.name, labels or {}, float(value), self.kind, self.help)


def _counter(name: str, help_: str, *labels: str) -> Metric:
    return Metric(name, "counter", help_, labels)


def _gauge(name: str, help_: str, *labels: str) -> Metric:
    return Metric(name, "gauge", help_, labels)


#: Kernel counters per event type (sysward.agent.sensors.TypeCounters).
KERNEL_COUNTERS = ("seen", "filtered", "rejected", "submitted", "lost", "discarded")
#: Per-output delivery counters (sysward.outputs.Dispatcher.stats()).
OUTPUT_COUNTERS = ("sent", "failed", "dropped")
#: Enforcement counters: the kernel's (enum enf_counter of bpf/abi.h, lower case) and the
#: agent's own pending_dropped (sysward.enforce.Enforcer.counters(); a test checks both).
ENFORCE_COUNTERS = ("killed", "would_kill", "denied", "would_deny", "failed", "protected",
                    "report_lost", "checks", "pending_dropped")

_ALL: tuple[Metric, ...] = (
    # kernel (label type)
    *(_counter(f"sysward_kernel_{what}_total", f"events {what} in the kernel, per event type",
               "type") for what in KERNEL_COUNTERS),
    # discarders (sysward.enforce.prefilter.discarders.DiscardStats); their hits are
    # sysward_kernel_discarded_total
    _counter("sysward_discarders_added_total",
             "paths proved to match no rule of their event type, written into the kernel map"),
    _counter("sysward_discarders_evicted_total",
             "discarders removed to make room (the map is bounded; second-chance clock)"),
    _counter("sysward_discarders_cleared_total", "discarders removed by reloads"),
    _gauge("sysward_discarders_live", "discarders in the kernel map now"),
    _gauge("sysward_discarders_capacity", "size bound of the kernel map of discarders"),
    # bounded stage queues (label queue)
    _gauge("sysward_queue_depth", "Events waiting in the queue.", "queue"),
    _gauge("sysward_queue_capacity", "Queue size bound.", "queue"),
    _gauge("sysward_queue_high_water", "Most events ever waiting at once.", "queue"),
    _counter("sysward_queue_enqueued_total", "Events put into the queue.", "queue"),
    _counter("sysward_queue_dropped_total", "Events dropped because the queue was full.",
             "queue"),
    # pipeline (sysward.agent.engine)
    _counter("sysward_reader_records_total", "records read from the ring buffer"),
    _counter("sysward_decoder_events_total", "records decoded"),
    _counter("sysward_decoder_errors_total", "records that could not be decoded (dropped)"),
    _counter("sysward_agent_shutdown_dropped_total",
             "queued events left unevaluated when the shutdown deadline came"),
    _counter("sysward_rules_events_total", "events evaluated against the rules"),
    _counter("sysward_rules_matches_total", "rule matches"),
    _counter("sysward_rules_eval_errors_total",
             "rule evaluations that raised (rule skipped for that event)"),
    _counter("sysward_rules_eval_seconds_total",
             "time spent decoding, enriching and evaluating rules"),
    _counter("sysward_agent_reloads_total", "successful reloads"),
    _counter("sysward_agent_drop_reports_total",
             "drop warnings (and internal drop alerts) reported while running"),
    _counter("sysward_agent_reload_failures_total", "reloads refused (the running set was kept)"),
    _gauge("sysward_rules_loaded", "rules loaded"),
    _gauge("sysward_rules_correlation_keys", "keys held by the correlation rules' state"),
    _counter("sysward_rules_correlation_evicted_total",
             "correlation keys and open sequences evicted by the bounds"),
    _counter("sysward_rules_correlation_fired_total", "correlation rules that fired"),
    # enrichment (sysward.enrich.Enricher.stats())
    _counter("sysward_enrich_events_total", "Events given process context."),
    _gauge("sysward_enrich_processes", "Entries in the process table (live and recently exited)."),
    _gauge("sysward_enrich_processes_exited", "Exited entries waiting out their grace period."),
    _gauge("sysward_enrich_processes_retained",
           "Processes out of the table still referred to (an exited parent of live children, an "
           "event in flight)."),
    _gauge("sysward_enrich_max_processes", "Size bound of the process table (entries)."),
    _gauge("sysward_enrich_table_bytes",
           "Estimated bytes of the process table (entries and retained processes)."),
    _gauge("sysward_enrich_table_max_bytes",
           "Byte budget of the process table (process_table.max_mb)."),
    _gauge("sysward_enrich_exit_grace_seconds",
           "How long exited entries are kept now: exit_grace_s, or less under churn."),
    _counter("sysward_enrich_lists_capped_total",
             "argv/env lists cut at their per-process byte cap."),
    _gauge("sysward_enrich_pipes",
           "Pipe ends remembered (writer or reader of a pipe inode, registered at exec)."),
    _gauge("sysward_enrich_pipe_bytes", "Estimated bytes of the pipe table's entries."),
    _counter("sysward_enrich_pipe_evictions_total",
             "Pipe ends forgotten to keep the pipe table within its bound."),
    _counter("sysward_enrich_pipe_links_total",
             "Execs that found the process on the other end of their stdin/stdout pipe."),
    _counter("sysward_enrich_seeded_total", "Processes read from /proc at seeding."),
    _counter("sysward_enrich_misses_total",
             "Events of a pid the table did not know (entry created)."),
    _counter("sysward_enrich_miss_proc_reads_total",
             "Misses completed from /proc/<pid> (live only)."),
    _counter("sysward_enrich_carried_total", "Events that arrived with their own process context."),
    _counter("sysward_enrich_forks_total", "New processes from clone/fork/vfork/clone3."),
    _counter("sysward_enrich_execs_total", "Successful execs applied to the table."),
    _counter("sysward_enrich_exits_total", "Process exits seen."),
    _counter("sysward_enrich_evictions_expired_total",
             "Exited entries removed after the grace period."),
    _counter("sysward_enrich_evictions_exited_early_total",
             "Exited entries removed before the grace period: their share of the budget was full."),
    _counter("sysward_enrich_evictions_budget_total",
             "Live entries removed (least recently seen first): the byte budget was full."),
    _counter("sysward_enrich_evictions_count_total",
             "Live entries removed (least recently seen first): max_processes was reached."),
    _counter("sysward_enrich_cgroup_misses_total",
             "cgroup ids that could not be resolved to a path."),
    _counter("sysward_enrich_cgroup_rescans_total",
             "Walks of the cgroup v2 tree after a cache miss."),
    _counter("sysward_enrich_container_lookups_total", "Container metadata lookups (name, image)."),
    _counter("sysward_enrich_scope_filtered_total",
             "Events dropped before the rules: their container is out of scope "
             "(filters.namespaces, filters.labels) and the kernel did not know its cgroup yet."),
    _counter("sysward_enrich_alerts_without_container_meta_total",
             "Alerts sent before the runtime had said who their container is (name, image, pod)."),
    # the CRI runtime's metadata thread (enrich/cri/watcher.py)
    _counter("sysward_cri_requests_total", "Container metadata requests handed to the CRI thread."),
    _counter("sysward_cri_requests_refused_total",
             "Requests refused by the full queue (retried at the next refresh)."),
    _counter("sysward_cri_resolved_total", "Containers whose metadata the CRI runtime returned."),
    _counter("sysward_cri_failures_total", "CRI calls that failed (timeout, unknown container)."),
    _counter("sysward_cri_refreshes_total", "Listings of the runtime's pods and containers."),
    _counter("sysward_cri_removed_total",
             "Containers forgotten because the runtime no longer runs them."),
    _gauge("sysward_cri_containers", "Containers in the CRI metadata cache."),
    _gauge("sysward_cri_pods", "Pods in the CRI metadata cache."),
    _gauge("sysward_cri_kernel_cgroups",
           "Out-of-scope cgroup ids in the kernel's scope_cgroups map."),
    _counter("sysward_enrich_user_lookups_total", "passwd/group database lookups (cache misses)."),
    # alerts and outputs
    _counter("sysward_rules_alerts_total", "alerts per rule and priority", "rule", "priority"),
    _counter("sysward_outputs_grouped_total",
             "repeats held back by alert grouping (stored, summarised once)"),
    _counter("sysward_outputs_suppressed_total",
             "notifications held back by the rate limit, per rule", "rule"),
    *(_counter(f"sysward_outputs_{what}_total", f"alerts {what} per output", "output")
      for what in OUTPUT_COUNTERS),
    # enforcement
    *(_counter(f"sysward_enforce_{name}_total",
               "enforcement counter of the kernel (see docs/enforcement.md)")
      for name in ENFORCE_COUNTERS),
    # the telemetry itself
    _counter("sysward_telemetry_source_errors_total",
             "Telemetry sources that raised while being read."),
    _counter("sysward_telemetry_scrapes_total", "Requests served on /metrics."),
    # the process itself (sysward.agent.procself), under the names Prometheus clients use
    _gauge("process_resident_memory_bytes", "Resident set size of the agent, in bytes."),
    _gauge("process_virtual_memory_bytes", "Virtual address space of the agent, in bytes."),
    _counter("process_cpu_seconds_total", "User plus system CPU time of the agent, seconds."),
    _gauge("process_open_fds", "File descriptors the agent holds open."),
    _gauge("process_max_fds", "The agent's limit of open file descriptors (soft)."),
    _gauge("process_start_time_seconds", "When the agent started, seconds since the epoch."),
)

METRICS: dict[str, Metric] = {m.name: m for m in _ALL}
assert len(METRICS) == len(_ALL), "a metric name is registered twice"
assert all(m.name.endswith("_total") == (m.kind == "counter") for m in _ALL), \
    "counters, and only counters, are named *_total"


def metric(name: str) -> Metric:
    """The registered metric ``name``; KeyError names it when it is not registered."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not registered in sysward.metrics") from None


def samples_from_stats(stats: Mapping[str, int | float]) -> list[Sample]:
    """Turn a stage's ``stats()`` dict (registered name -> value) into samples."""
    return [metric(name).sample(value) for name, value in stats.items()]
