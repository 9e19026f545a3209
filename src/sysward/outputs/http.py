"""Alerts POSTed to an HTTP(S) webhook in Falco's JSON shape (falcosidekick listens at ``/``).

One alert per request, as falcosidekick expects; the worker takes up to ``batch_size`` queued
alerts at a time (waiting at most ``flush_interval_s`` for a batch to form) and sends them
back to back over one keep-alive connection.  A failed request (connection error, timeout,
HTTP 5xx/408/429) is retried up to ``max_retries`` times with exponential back-off
(backoff_s, 2*backoff_s, 4*backoff_s ... capped at 30 s); other 4xx answers are final.
While the worker waits or retries, alerts keep queueing; a full queue drops and counts.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse
from collections.abc import Mapping

from sysward import __version__
from sysward.alert import Alert
from sysward.errors import SyswardError
from sysward.outputs.base import QueuedOutput

MAX_BACKOFF_S = 30.0
_RETRYABLE_STATUS = frozenset({408, 429})


class HttpOutput(QueuedOutput):
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        batch_size: int = 50,
        flush_interval_s: float = 1.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        queue_size: int = 10_000,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SyswardError(
                f"bad webhook URL {url!r}; use http://HOST[:PORT]/PATH or https://..."
            )
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        try:
            self._port = parts.port
        except ValueError:
            raise SyswardError(f"bad port in webhook URL {url!r}.") from None
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout_s = timeout_s
        self._max_retries = max(0, max_retries)
        self._backoff_s = max(0.0, backoff_s)
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"sysward/{__version__}",
            **dict(headers or {}),
        }
        self._conn: http.client.HTTPConnection | None = None
        self.retries = 0  # requests repeated after a failure
        super().__init__(
            "http", queue_size=queue_size, batch_size=batch_size, linger_s=flush_interval_s
        )

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out["retries"] = self.retries
        return out

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout_s)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _post(self, body: bytes) -> int:
        conn = self._connection()
        timeout = self._remaining(self._timeout_s)
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        else:
            conn.timeout = timeout
        conn.request("POST", self._path, body=body, headers=self._headers)
        response = conn.getresponse()
        response.read()  # drain it, or the keep-alive connection cannot be reused
        if response.will_close:
            self._drop_connection()
        return response.status

    def _deliver(self, alert: Alert) -> bool:
        body = alert.to_json()
        attempt = 0
        while True:
            try:
                status = self._post(body)
                if 200 <= status < 300:
                    return True
                retryable = status >= 500 or status in _RETRYABLE_STATUS
                error = f"HTTP {status} from {self.url}"
            except (OSError, http.client.HTTPException) as exc:
                # Timeouts and resets leave the connection in an unknown state: start over.
                self._drop_connection()
                retryable = True
                error = f"POST {self.url} failed: {type(exc).__name__}: {exc}"
            if not retryable or attempt >= self._max_retries:
                self._errors.report(error)
                return False
            delay = min(MAX_BACKOFF_S, self._backoff_s * (2**attempt))
            attempt += 1
            if self._stopping.is_set():
                # Shutting down: retry only if the back-off still fits before the deadline.
                if delay >= self._remaining(delay + 1.0):
                    self._errors.report(error + " (giving up: shutting down)")
                    return False
                time.sleep(delay)
            else:
                self._stopping.wait(delay)  # a shutdown cuts the sleep short
            self.retries += 1

    def _write_batch(self, batch: list[Alert]) -> int:
        written = 0
        for i, alert in enumerate(batch):
            if self._past_deadline():
                self._batch_skipped = len(batch) - i
                break
            if self._deliver(alert):
                written += 1
        return written

    def _close_sink(self) -> None:
        self._drop_connection()
