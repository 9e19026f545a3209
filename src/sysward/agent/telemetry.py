"""Counters, Prometheus exposition and the health endpoint.

The hot path never calls prometheus-client: each stage keeps its counters as plain Python
ints on its own objects and registers a *source* — a function returning samples — here.  At
scrape time a custom collector calls every source and turns the samples into metric
families, so a counter costs one integer add per event and nothing more.

``Telemetry.serve`` runs a small HTTP server on a daemon thread:

- ``GET /metrics``: Prometheus text exposition (prometheus-client), the sources plus the
  process collector (RSS, CPU seconds, open fds, start time).
- ``GET /healthz``: 200 ``ok`` while the ``health`` callable says so (``ok, dropping: ...``
  while events are being dropped), else 503 and the reason.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from sysward.config import parse_host_port
from sysward.errors import SyswardError
from sysward.metrics import METRICS, Kind, Sample, metric, samples_from_stats

__all__ = ["HealthFn", "Kind", "QueueLike", "Sample", "Server", "Source", "Telemetry",
           "parse_listen", "queue_samples", "samples_from_stats"]

log = logging.getLogger(__name__)

Source = Callable[[], Iterable[Sample]]
HealthFn = Callable[[], tuple[bool, str]]


class QueueLike(Protocol):
    """What ``queue_samples`` reads from a bounded queue (sysward.agent.stage_queue.StageQueue)."""

    name: str
    capacity: int
    enqueued_total: int
    dropped_total: int
    high_water: int

    @property
    def depth(self) -> int: ...


def queue_samples(*queues: QueueLike) -> list[Sample]:
    """Samples of bounded stage queues, labelled ``queue=<name>``; use as
    ``telemetry.add_source(lambda: queue_samples(q1, q2))``."""
    out: list[Sample] = []
    for q in queues:
        labels = {"queue": q.name}
        out += [
            metric("sysward_queue_depth").sample(q.depth, labels),
            metric("sysward_queue_capacity").sample(q.capacity, labels),
            metric("sysward_queue_high_water").sample(q.high_water, labels),
            metric("sysward_queue_enqueued_total").sample(q.enqueued_total, labels),
            metric("sysward_queue_dropped_total").sample(q.dropped_total, labels),
        ]
    return out


def _label_key(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


class _SourcesCollector(Collector):
    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for sample in self._telemetry.samples():
            if sample.kind == "counter":
                family = sample.name.removesuffix("_total")
                sample_name = family + "_total"
            else:
                family = sample_name = sample.name
            metric = families.get(family)
            if metric is None:
                metric = families[family] = Metric(family, sample.help, sample.kind)
            elif metric.type != sample.kind:
                self._telemetry.source_errors += 1  # same name, two kinds: keep the first
                continue
            metric.add_sample(sample_name, dict(sample.labels), float(sample.value))
        yield from families.values()


class Server:
    """A running /metrics + /healthz endpoint; ``close()`` stops it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        address = httpd.server_address
        self.host: str = str(address[0])
        self.port: int = int(address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        # serve_forever polls every 50 ms, so shutdown() returns within one poll interval
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=1.0)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); SyswardError when malformed."""
    try:
        return parse_host_port(listen)
    except ValueError:
        raise SyswardError(
            f"bad listen address {listen!r}: use HOST:PORT, e.g. 127.0.0.1:8765 or [::1]:8765."
        ) from None


class Telemetry:
    def __init__(self, *, process_metrics: bool = True) -> None:
        self._sources: list[Source] = []
        self._lock = threading.Lock()
        self.source_errors = 0  # a source raised or clashed; its samples are left out
        self._logged: set[int] = set()
        self._unregistered: set[str] = set()
        self.scrapes = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_SourcesCollector(self))
        if process_metrics:
            ProcessCollector(registry=self.registry)

    def add_source(self, fn: Source) -> None:
        with self._lock:
            self._sources.append(fn)

    def samples(self) -> list[Sample]:
        """Call every source once; a failing source is counted and skipped."""
        with self._lock:
            sources = list(self._sources)
        out: list[Sample] = []
        for fn in sources:
            try:
                samples = list(fn())
            except Exception:  # a broken stage must not take the endpoint down
                self.source_errors += 1
                if id(fn) not in self._logged:  # once per source, not once per scrape
                    self._logged.add(id(fn))
                    log.exception("telemetry source %r failed", fn)
                continue
            for s in samples:
                known = METRICS.get(s.name)
                if known is not None and known.kind == s.kind:
                    out.append(s)
                    continue
                # only registered names are served (docs/metrics.md lists every one)
                self.source_errors += 1
                if s.name not in self._unregistered:
                    self._unregistered.add(s.name)
                    log.error("telemetry source %r reported %s %r, which sysward.metrics does "
                              "not register; left out", fn, s.kind, s.name)
        out.append(metric("sysward_telemetry_source_errors_total").sample(self.source_errors))
        out.append(metric("sysward_telemetry_scrapes_total").sample(self.scrapes))
        return out

    def snapshot(self) -> dict[str, float]:
        """Every sample as ``name`` or ``name{label="v",...}`` -> value.

        A labelled metric also appears under its bare name with the sum over its labels
        (handy for "lost events in total"), unless a source reports the bare name itself.
        """
        out: dict[str, float] = {}
        sums: dict[str, float] = {}
        for s in self.samples():
            out[_label_key(s.name, s.labels)] = float(s.value)
            if s.labels:
                sums[s.name] = sums.get(s.name, 0.0) + float(s.value)
        for name, total in sums.items():
            out.setdefault(name, total)
        return out

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, listen: str = "127.0.0.1:8765", health: HealthFn | None = None) -> Server:
        host, port = parse_listen(listen)
        telemetry = self
        health_fn: HealthFn = health or (lambda: (True, "ok"))

        class Handler(BaseHTTPRequestHandler):
            server_version = "sysward"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    telemetry.scrapes += 1
                    self._reply(200, telemetry.exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    try:
                        ok, reason = health_fn()
                    except Exception as exc:  # a crashing check means "not healthy"
                        ok, reason = False, f"health check failed: {exc}"
                    if ok:  # healthy, with what it says besides (e.g. "dropping: ...")
                        body = "ok" if reason in ("", "ok") else f"ok, {reason}"
                    else:
                        body = reason or "unhealthy"
                    body += "\n"
                    self._reply(200 if ok else 503, body.encode(), "text/plain; charset=utf-8")
                else:
                    self._reply(404, b"not found: try /metrics or /healthz\n",
                                "text/plain; charset=utf-8")

            def _reply(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # access logs would be noise on stderr

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class HTTPServer(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True
            allow_reuse_address = True

        try:
            httpd = HTTPServer((host, port), Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SyswardError(
                    f"cannot serve metrics on {listen}: the port is already in use; stop the "
                    "other program or set server.listen to a free port."
                ) from None
            raise SyswardError(
                f"cannot serve metrics on {listen}: {exc.strerror or exc}; "
                "set server.listen to a local address such as 127.0.0.1:8765."
            ) from None
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name="sysward-metrics", daemon=True,
        )
        thread.start()
        return Server(httpd, thread)
