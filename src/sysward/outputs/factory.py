"""Builds the dispatcher and its outputs from the configuration."""

from __future__ import annotations

from sysward.config import Config
from sysward.outputs.base import Output
from sysward.outputs.dispatcher import Dispatcher
from sysward.outputs.file import FileOutput
from sysward.outputs.ratelimit import TokenBucket
from sysward.outputs.sqlite_store import SqliteOutput
from sysward.outputs.stdout import StdoutOutput
from sysward.outputs.syslog import SyslogOutput

_MB = 1024 * 1024


def build_outputs(config: Config) -> Dispatcher:
    """Every enabled output behind one dispatcher; SyswardError if one cannot start.

    Outputs already started are closed again when a later one fails, so a bad syslog
    address does not leave a half-built set of worker threads behind.
    """
    out = config.outputs
    started: list[Output] = []
    store: SqliteOutput | None = None
    try:
        if out.stdout.enabled:
            started.append(StdoutOutput(out.stdout.format, queue_size=out.queue_size))
        if out.file.enabled:
            started.append(
                FileOutput(
                    out.file.path,
                    max_bytes=int(out.file.max_size_mb * _MB),
                    backups=out.file.backups,
                    queue_size=out.queue_size,
                )
            )
        if out.syslog.enabled:
            started.append(
                SyslogOutput(
                    out.syslog.address,
                    out.syslog.facility,
                    out.syslog.format,
                    queue_size=out.queue_size,
                )
            )
        if out.http.enabled:
            h = out.http
            from sysward.outputs.http import HttpOutput  # only with a webhook: see __init__

            started.append(
                HttpOutput(
                    h.url,
                    timeout_s=h.timeout_s,
                    batch_size=h.batch_size,
                    flush_interval_s=h.flush_interval_s,
                    max_retries=h.max_retries,
                    backoff_s=h.backoff_s,
                    queue_size=h.queue_size,
                    headers=h.headers,
                )
            )
        if out.sqlite.enabled:
            s = out.sqlite
            store = SqliteOutput(
                s.path,
                retention_hours=s.retention_hours,
                max_size_mb=s.max_size_mb,
                retention_interval_s=s.retention_interval_s,
                queue_size=s.queue_size,
            )
    except BaseException:
        for output in started:
            output.close(0.2)
        raise
    limiter = TokenBucket(config.rate_limit.rate, config.rate_limit.burst)
    return Dispatcher(
        started, store=store, min_priority=config.min_priority, rate_limit=limiter
    )
