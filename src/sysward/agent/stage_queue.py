"""A bounded queue between two pipeline stages that never blocks the producer.

The producer (the kernel reader) must never wait: when the queue holds ``capacity`` items,
a new batch is dropped whole and counted, so the loss is visible in the counters instead of
backing up into the kernel ring buffer unnoticed.  Items move in batches because a lock
round-trip per event would cost more than the event itself.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class StageQueue(Generic[T]):
    def __init__(self, name: str, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("queue capacity must be positive")
        self.name = name
        self.capacity = capacity
        self._batches: deque[list[T]] = deque()
        self._depth = 0
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self.enqueued_total = 0
        self.dropped_total = 0
        self.high_water = 0

    @property
    def depth(self) -> int:
        return self._depth

    def put_batch(self, batch: list[T]) -> int:
        """Queue ``batch`` unless it does not fit; returns how many items were dropped."""
        n = len(batch)
        if n == 0:
            return 0
        with self._cond:
            if self._closed or self._depth + n > self.capacity:
                self.dropped_total += n
                return n
            self._batches.append(batch)
            self._depth += n
            self.enqueued_total += n
            if self._depth > self.high_water:
                self.high_water = self._depth
            self._cond.notify()
        return 0

    def get_batch(self, timeout: float | None = None) -> list[T] | None:
        """The oldest batch, or None after ``timeout`` seconds / when closed and empty."""
        with self._cond:
            if not self._batches and not self._closed:
                self._cond.wait(timeout)
            if not self._batches:
                return None
            batch = self._batches.popleft()
            self._depth -= len(batch)
            return batch

    def discard(self) -> int:
        """Empty the queue; returns how many items were thrown away (the caller counts them)."""
        with self._cond:
            n = self._depth
            self._batches.clear()
            self._depth = 0
        return n

    def close(self) -> None:
        """Refuse new batches and wake the consumer; what is queued can still be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
