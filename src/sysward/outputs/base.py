"""The output contract, and the queued worker most outputs are built on.

An output receives alerts from the pipeline thread through ``emit()``, which must never block:
the rule stage cannot wait on a slow disk, a syslog daemon or a webhook.  ``QueuedOutput``
therefore puts each alert on a bounded queue (full -> the alert is dropped and counted) and a
worker thread of its own writes batches to the sink.  The worker sleeps on a condition variable
while nothing happens, so an idle agent spends no CPU here.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Any

from sysward.alert import Alert
from sysward.kernel.threadname import name_os_thread

log = logging.getLogger(__name__)


class Output(ABC):
    """An alert sink.  ``emit`` never blocks; ``close`` returns within ``timeout_s``."""

    name: str = "output"

    @abstractmethod
    def emit(self, alert: Alert) -> None:
        """Hand one alert over; returns at once (the alert is queued, or dropped and counted)."""

    def emit_many(self, alerts: list[Alert]) -> None:
        """``emit`` for each of ``alerts``, in order (queued outputs take them in one step)."""
        for alert in alerts:
            self.emit(alert)

    @abstractmethod
    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every alert emitted so far reached the sink; False on timeout."""

    def begin_close(self, deadline: float) -> None:  # noqa: B027 - optional hook
        """Start shutting down without waiting (``deadline`` is a time.monotonic() value).

        The dispatcher calls this on every output first so they all drain in parallel.
        """

    @abstractmethod
    def close(self, timeout_s: float = 1.0) -> None:
        """Deliver what is queued (within the deadline), release the sink, stop the worker."""

    @abstractmethod
    def stats(self) -> dict[str, int]:
        """Counters: ``sent``, ``failed`` (sink refused), ``dropped`` (never tried), ``queued``."""


class _ErrorLog:
    """Logs a sink error when it changes, and at most once a minute while it repeats."""

    __slots__ = ("_name", "_last", "_last_at", "_repeats")

    def __init__(self, name: str) -> None:
        self._name = name
        self._last = ""
        self._last_at = 0.0
        self._repeats = 0

    def report(self, message: str) -> None:
        now = time.monotonic()
        if message == self._last and now - self._last_at < 60.0:
            self._repeats += 1
            return
        extra = f" (and {self._repeats} more times)" if self._repeats else ""
        log.warning("output %s: %s%s", self._name, message, extra)
        self._last, self._last_at, self._repeats = message, now, 0


class QueuedOutput(Output):
    """A bounded queue in front of a sink, drained by one worker thread.

    Subclasses implement ``_write_batch`` (called on the worker thread with 1..batch_size
    items, returns how many reached the sink) and may override ``_flush_sink``,
    ``_close_sink`` and ``_housekeeping``.  Everything touching the sink runs on the worker
    thread, which matters for sqlite connections and keeps the sink code free of locks.
    """

    def __init__(
        self,
        name: str,
        *,
        queue_size: int = 10_000,
        batch_size: int = 256,
        linger_s: float = 0.0,
        housekeeping_s: float | None = None,
    ) -> None:
        self.name = name
        self._queue: deque[Any] = deque()
        self._queue_size = max(1, queue_size)
        self._batch_size = max(1, batch_size)
        self._linger_s = linger_s
        self._housekeeping_s = housekeeping_s
        self._cv = threading.Condition(threading.Lock())
        # Set when closing starts: interrupts back-off sleeps of subclasses.
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._first_queued_at = 0.0
        self._flush_requests = 0
        self._flushes_done = 0
        self._busy = False
        self._sent = 0
        self._failed = 0
        self._dropped = 0
        # Items of the current batch a sink chose not to try (deadline): dropped, not failed.
        self._batch_skipped = 0
        self._closed = False
        self._errors = _ErrorLog(name)
        self._thread = threading.Thread(target=self._run, name=f"sysward-out-{name}", daemon=True)
        self._thread.start()

    # -- pipeline side -------------------------------------------------------------------

    def emit(self, alert: Alert) -> None:
        self._put(alert)

    def emit_many(self, alerts: list[Alert]) -> None:
        self._put_many(alerts)

    def _put_many(self, items: list[Any]) -> None:
        """``_put`` for each item, under one acquisition of the lock, with at most one wake-up."""
        with self._cv:
            queue = self._queue
            before = len(queue)
            room = 0 if self._closed else max(0, self._queue_size - before)
            if room < len(items):
                self._dropped += len(items) - room
                items = items[:room]
            if not items:
                return
            queue.extend(items)
            after = len(queue)
            if before == 0:
                self._first_queued_at = time.monotonic()
                self._cv.notify()
            elif before < self._batch_size <= after:
                self._cv.notify()

    def _put(self, item: Any) -> None:
        with self._cv:
            queue = self._queue
            if len(queue) >= self._queue_size or self._closed:
                self._dropped += 1
                return
            queue.append(item)
            # Wake the worker only on the transitions it waits for, not on every alert.
            if len(queue) == 1:
                self._first_queued_at = time.monotonic()
                self._cv.notify()
            elif len(queue) == self._batch_size:
                self._cv.notify()

    def flush(self, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cv:
            self._flush_requests += 1
            ticket = self._flush_requests
            self._cv.notify_all()
            while self._flushes_done < ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cv.wait(remaining)
        return True

    def begin_close(self, deadline: float) -> None:
        with self._cv:
            if self._deadline is None or deadline < self._deadline:
                self._deadline = deadline
            self._closed = True
            self._stopping.set()
            self._cv.notify_all()

    def close(self, timeout_s: float = 1.0) -> None:
        self.begin_close(time.monotonic() + timeout_s)
        assert self._deadline is not None
        self._thread.join(max(0.0, self._deadline - time.monotonic()) + 0.05)
        if self._thread.is_alive():
            # The sink is stuck (e.g. a write that ignores its timeout): whatever is still
            # queued will never be written; count it instead of losing it silently.
            with self._cv:
                self._dropped += len(self._queue)
                self._queue.clear()

    def stats(self) -> dict[str, int]:
        with self._cv:
            return {
                "sent": self._sent,
                "failed": self._failed,
                "dropped": self._dropped,
                "queued": len(self._queue) + (1 if self._busy else 0),
            }

    # -- worker side ---------------------------------------------------------------------

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _remaining(self, default: float) -> float:
        """Time left before the close deadline, capped by ``default``."""
        if self._deadline is None:
            return default
        return max(0.0, min(default, self._deadline - time.monotonic()))

    def _run(self) -> None:
        name_os_thread(f"sw-out-{self.name}")
        next_housekeeping = (
            time.monotonic() + self._housekeeping_s if self._housekeeping_s else None
        )
        try:
            self._open_sink()
        except Exception as exc:  # the sink could not be opened: count everything as failed
            self._errors.report(f"cannot open: {exc}")
        while True:
            with self._cv:
                while not self._queue and not self._closed and self._flushes_done == (
                    self._flush_requests
                ):
                    timeout = None
                    if next_housekeeping is not None:
                        timeout = max(0.0, next_housekeeping - time.monotonic())
                    if not self._cv.wait(timeout):
                        break
                # Let a batch form (e.g. the webhook), unless someone is waiting for it.
                if self._linger_s > 0 and self._queue:
                    until = self._first_queued_at + self._linger_s
                    while (
                        len(self._queue) < self._batch_size
                        and not self._closed
                        and self._flushes_done == self._flush_requests
                    ):
                        remaining = until - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cv.wait(remaining)
                count = min(len(self._queue), self._batch_size)
                batch = [self._queue.popleft() for _ in range(count)]
                if self._queue:
                    self._first_queued_at = time.monotonic()
                closing = self._closed
                flush_ticket = self._flush_requests
                self._busy = bool(batch)
            if batch:
                if closing and self._past_deadline():
                    written = 0
                    with self._cv:
                        self._dropped += len(batch)
                else:
                    written = self._write_batch_safely(batch)
                with self._cv:
                    self._sent += written
                    self._busy = False
                continue  # keep draining before flushing or closing
            if next_housekeeping is not None and time.monotonic() >= next_housekeeping:
                self._call_safely(self._housekeeping, "housekeeping")
                assert self._housekeeping_s is not None
                next_housekeeping = time.monotonic() + self._housekeeping_s
            if closing:
                self._call_safely(self._flush_sink, "flush")
                self._call_safely(self._close_sink, "close")
                with self._cv:
                    self._flushes_done = self._flush_requests
                    self._cv.notify_all()
                return
            with self._cv:
                pending_flush = self._flushes_done < flush_ticket
            if pending_flush:
                self._call_safely(self._flush_sink, "flush")
                with self._cv:
                    self._flushes_done = flush_ticket
                    self._cv.notify_all()

    def _write_batch_safely(self, batch: list[Any]) -> int:
        self._batch_skipped = 0
        try:
            written = self._write_batch(batch)
        except Exception as exc:
            self._errors.report(f"{type(exc).__name__}: {exc}")
            written = 0
        if written < len(batch):
            skipped = min(self._batch_skipped, len(batch) - written)
            with self._cv:
                self._dropped += skipped
                self._failed += len(batch) - written - skipped
        return written

    def _call_safely(self, fn: Any, what: str) -> None:
        try:
            fn()
        except Exception as exc:
            self._errors.report(f"{what} failed: {type(exc).__name__}: {exc}")

    # -- sink hooks (worker thread) ------------------------------------------------------

    def _open_sink(self) -> None:
        """Open the sink on the worker thread (default: nothing to open)."""

    @abstractmethod
    def _write_batch(self, batch: list[Any]) -> int:
        """Write the batch; return how many items reached the sink."""

    def _flush_sink(self) -> None:
        """Push buffered data to the sink."""

    def _close_sink(self) -> None:
        """Release the sink."""

    def _housekeeping(self) -> None:
        """Periodic maintenance (every ``housekeeping_s`` seconds, on the worker thread)."""
