"""Token bucket for alert notifications: ``rate`` tokens per second, at most ``burst`` saved."""

from __future__ import annotations

import time


class TokenBucket:
    """``allow()`` takes one token if there is one.  ``rate <= 0`` means unlimited."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: int, now: float | None = None) -> None:
        self.rate = float(rate)
        self.burst = float(max(1, burst))
        self._tokens = self.burst  # start full: a quiet agent may report a burst at once
        self._last = time.monotonic() if now is None else now

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def allow(self, now: float | None = None) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        elapsed = now - self._last
        self._last = now
        if elapsed > 0:
            tokens = self._tokens + elapsed * self.rate
            self._tokens = tokens if tokens < self.burst else self.burst
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
