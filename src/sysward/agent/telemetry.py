"""Counters, Prometheus exposition and the health endpoint.

The hot path never formats a metric: each stage keeps its counters as plain Python ints on
its own objects and registers a *source* -- a function returning samples -- here.  At scrape
time every source is called and its samples are written in Prometheus' text format
(``exposition.py``), so a counter costs one integer add per event and nothing more.

``Telemetry.serve`` runs a small HTTP server on a daemon thread (``socketserver`` from the
standard library: the agent loads neither http.server nor prometheus-client, which pull in
http.client, ssl and email and cost ~7 MB of the idle RSS; docs/performance.md "Memory"):

- ``GET /metrics``: the sources plus the process's own figures (RSS, CPU seconds, open fds,
  start time: ``procself.py``), in the text format 0.0.4.
- ``GET /healthz``: 200 ``ok`` while the ``health`` callable says so (``ok, dropping: ...``
  while events are being dropped), else 503 and the reason.
"""

from __future__ import annotations

import errno
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Protocol

from sysward.agent.exposition import CONTENT_TYPE, render
from sysward.agent.procself import process_samples
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


Answer = Callable[[str], tuple[int, bytes, str]]  # path -> (status, body, content type)

_TEXT = "text/plain; charset=utf-8"

#: A client that sends nothing for this long loses its connection (and its thread).
REQUEST_TIMEOUT_S = 10.0
#: Bounds of a request line or header line, and of the header count (a scraper sends a few).
MAX_LINE = 8192
MAX_HEADERS = 100


class _Handler(socketserver.StreamRequestHandler):
    """One HTTP/1.1 request per connection: GET or HEAD of a path, answered and closed."""

    timeout = REQUEST_TIMEOUT_S
    server: _Server

    def handle(self) -> None:
        request = self.rfile.readline(MAX_LINE + 1)
        if not request:
            return
        parts = request.split()
        if len(request) > MAX_LINE or len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            self._send(HTTPStatus.BAD_REQUEST, b"bad request\n", _TEXT)
            return
        for _ in range(MAX_HEADERS):  # the headers say nothing this server needs
            line = self.rfile.readline(MAX_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                break
        else:
            self._send(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, b"too many headers\n", _TEXT)
            return
        method = parts[0]
        if method not in (b"GET", b"HEAD"):
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"use GET: /metrics or /healthz\n", _TEXT)
            return
        path = parts[1].split(b"?", 1)[0].decode("latin-1")
        code, body, ctype = self.server.answer(path)
        self._send(HTTPStatus(code), body, ctype, with_body=method == b"GET")

    def _send(self, status: HTTPStatus, body: bytes, ctype: str, with_body: bool = True) -> None:
        head = (f"HTTP/1.1 {status.value} {status.phrase}\r\nServer: sysward\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body if with_body else head)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False  # close() must not wait for a stalled client
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily,
                 answer: Answer) -> None:
        self.address_family = family
        self.answer = answer
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # a client that stalled or went away mid-request: nothing for the operator to fix
        log.debug("metrics request from %s failed", client_address, exc_info=True)


class Server:
    """A running /metrics + /healthz endpoint; ``close()`` stops it."""

    def __init__(self, httpd: socketserver.TCPServer, thread: threading.Thread) -> None:
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
        self.process_metrics = process_metrics

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
        samples = self.samples()
        if self.process_metrics:
            samples += process_samples()
        return render(samples, self._clash)

    def _clash(self, sample: Sample) -> None:
        self.source_errors += 1  # one name, two kinds: the first kind is kept

    def serve(self, listen: str = "127.0.0.1:8765", health: HealthFn | None = None) -> Server:
        host, port = parse_listen(listen)
        telemetry = self
        health_fn: HealthFn = health or (lambda: (True, "ok"))

        def answer(path: str) -> tuple[int, bytes, str]:
            if path == "/metrics":
                telemetry.scrapes += 1
                return 200, telemetry.exposition(), CONTENT_TYPE
            if path == "/healthz":
                try:
                    ok, reason = health_fn()
                except Exception as exc:  # a crashing check means "not healthy"
                    ok, reason = False, f"health check failed: {exc}"
                if ok:  # healthy, with what it says besides (e.g. "dropping: ...")
                    body = "ok" if reason in ("", "ok") else f"ok, {reason}"
                else:
                    body = reason or "unhealthy"
                return (200 if ok else 503), (body + "\n").encode(), _TEXT
            return 404, b"not found: try /metrics or /healthz\n", _TEXT

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            httpd = _Server((host, port), family, answer)
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
