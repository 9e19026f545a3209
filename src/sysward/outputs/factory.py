"""Builds the dispatcher and its outputs from the configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sysward.config import Config, config_to_dict
from sysward.outputs.base import Output
from sysward.outputs.dispatcher import Dispatcher
from sysward.outputs.file import FileOutput
from sysward.outputs.ratelimit import TokenBucket
from sysward.outputs.sqlite_store import SqliteOutput
from sysward.outputs.stdout import StdoutOutput
from sysward.outputs.syslog import SyslogOutput

_MB = 1024 * 1024


#: The kinds of output, each configured by the section ``outputs.<kind>``.
KINDS = ("stdout", "file", "syslog", "http", "sqlite")
#: Kinds whose queue is sized by ``outputs.queue_size`` (the others have their own).
_SHARED_QUEUE = ("stdout", "file", "syslog")


def _name(config: Config, kind: str) -> str:
    """The name an output of ``kind`` built from ``config`` carries (its metrics label)."""
    if kind == "stdout":
        return "json" if config.outputs.stdout.format == "json" else "stdout"
    return kind


def reusable_outputs(previous: Dispatcher, old: Config, new: Config) -> dict[str, Output]:
    """The outputs of ``previous`` (built from ``old``) that ``new`` configures exactly as
    before, by kind: a reload keeps them running, with their queue, connection and counters,
    so that two outputs never write the same sink at once."""
    running = {o.name: o for o in previous.all_outputs}
    keep: dict[str, Output] = {}
    for kind in KINDS:
        before, after = getattr(old.outputs, kind), getattr(new.outputs, kind)
        if not (before.enabled and after.enabled) or \
                config_to_dict(before) != config_to_dict(after):
            continue
        if kind in _SHARED_QUEUE and old.outputs.queue_size != new.outputs.queue_size:
            continue
        output = running.get(_name(old, kind))
        if output is not None:
            keep[kind] = output
    return keep


def build_outputs(config: Config, keep: Mapping[str, Output] | None = None) -> Dispatcher:
    """Every enabled output behind one dispatcher; SyswardError if one cannot start.

    ``keep``: running outputs to use as they are instead of new ones, by kind
    (``reusable_outputs``).  Outputs this call started are closed again when a later one
    fails, so a bad syslog address does not leave a half-built set of worker threads behind.
    """
    out = config.outputs
    keep = keep or {}
    started: list[Output] = []
    made: list[Output] = []
    store: SqliteOutput | None = None

    def start(kind: str, make: Callable[[], Output]) -> Output:
        output = keep.get(kind)
        if output is None:
            output = make()
            made.append(output)
        return output

    try:
        if out.stdout.enabled:
            started.append(start("stdout", lambda: StdoutOutput(out.stdout.format,
                                                                queue_size=out.queue_size)))
        if out.file.enabled:
            started.append(start("file", lambda: FileOutput(
                out.file.path,
                max_bytes=int(out.file.max_size_mb * _MB),
                backups=out.file.backups,
                queue_size=out.queue_size,
            )))
        if out.syslog.enabled:
            started.append(start("syslog", lambda: SyslogOutput(
                out.syslog.address,
                out.syslog.facility,
                out.syslog.format,
                queue_size=out.queue_size,
            )))
        if out.http.enabled:
            h = out.http

            def http() -> Output:
                from sysward.outputs.http import HttpOutput  # only with a webhook: see __init__

                return HttpOutput(
                    h.url,
                    timeout_s=h.timeout_s,
                    batch_size=h.batch_size,
                    flush_interval_s=h.flush_interval_s,
                    max_retries=h.max_retries,
                    backoff_s=h.backoff_s,
                    queue_size=h.queue_size,
                    headers=h.headers,
                )

            started.append(start("http", http))
        if out.sqlite.enabled:
            s = out.sqlite
            sink = start("sqlite", lambda: SqliteOutput(
                s.path,
                retention_hours=s.retention_hours,
                max_size_mb=s.max_size_mb,
                retention_interval_s=s.retention_interval_s,
                queue_size=s.queue_size,
            ))
            assert isinstance(sink, SqliteOutput)
            store = sink
    except BaseException:
        for output in made:
            output.close(0.2)
        raise
    limiter = TokenBucket(config.rate_limit.rate, config.rate_limit.burst)
    return Dispatcher(
        started, store=store, min_priority=config.min_priority, rate_limit=limiter
    )
