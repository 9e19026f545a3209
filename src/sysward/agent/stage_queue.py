"""A bounded queue between two pipeline stages that never blocks the producer.

The producer (the kernel reader) must never wait: when the queue holds ``capacity`` items,
a new batch is dropped whole and counted.  The agent's reader asks ``room`` first and takes
no more than fits out of the kernel ring, so a worker that falls behind for a moment leaves
records waiting in the ring (already allocated kernel memory, and no Python work for events
that would be dropped); only what the ring cannot hold is lost, and the kernel counts it per
event type.  Items move in batches because a lock round-trip per event would cost more than
the event itself.
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
        #: ``wait_room`` waits for at least this much room: a producer refilled a few items
        #: at a time would pay a hand-off per few events
        self.low_room = max(1, capacity // 8)

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
            low = self.capacity - self._depth < self.low_room
            self._depth -= len(batch)
            if low and self.capacity - self._depth >= self.low_room:
                self._cond.notify_all()  # the producer may be waiting for room (wait_room)
            return batch

    def room(self) -> int:
        """How many items fit now (the producer is the only one that adds)."""
        return max(0, self.capacity - self._depth)

    def wait_room(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds until ``low_room`` items fit (or the queue closes);
        returns ``room()``."""
        with self._cond:
            if self.capacity - self._depth < self.low_room and not self._closed:
                self._cond.wait(timeout)
            return max(0, self.capacity - self._depth)

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
