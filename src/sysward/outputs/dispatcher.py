"""Fans each alert out to every enabled output, after the priority filter and the rate limit.

Order of decisions for one alert:

1. below ``min_priority`` -> not an alert at all (counted as ``filtered``);
2. the sqlite store (when enabled) records it, whatever the rate limit says;
3. a repeat that alert grouping holds (sysward.outputs.grouping) is stored with
   ``suppressed = 1`` and counted as ``grouped``, and goes no further;
4. the token bucket decides whether notifications go out; if not, the alert is counted as
   suppressed for its rule (and stored with ``suppressed = 1``), like Falco's notification
   rate limiter which drops notifications and counts them;
5. every notification output gets it on its own bounded queue (a full queue drops and counts
   for that output only, so one slow webhook cannot hold back stdout).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from sysward.alert import PRIORITY_LABELS, Alert, Priority
from sysward.outputs.base import Output
from sysward.outputs.ratelimit import TokenBucket
from sysward.outputs.sqlite_store import SqliteOutput

log = logging.getLogger(__name__)

#: The longest the agent waits for outputs at shutdown (it must exit within 1 s of SIGTERM).
DEFAULT_CLOSE_TIMEOUT_S = 0.5
#: After this long without suppression, the next suppressed alert is logged again.
_SUPPRESSION_LOG_QUIET_S = 60.0


class Dispatcher:
    def __init__(
        self,
        outputs: Sequence[Output],
        *,
        store: SqliteOutput | None = None,
        min_priority: Priority = Priority.DEBUG,
        rate_limit: TokenBucket | None = None,
    ) -> None:
        self.outputs: tuple[Output, ...] = tuple(outputs)
        self.store = store
        self.min_priority = min_priority
        if rate_limit is not None and rate_limit.unlimited:
            rate_limit = None
        self.rate_limit = rate_limit
        self._lock = threading.Lock()
        self.alerts = 0  # alerts at or above min_priority
        self.filtered = 0  # below min_priority
        self.suppressed = 0  # notifications held back by the rate limit
        self.grouped = 0  # repeats held back by alert grouping (stored, not notified)
        self.suppressed_by_rule: dict[str, int] = {}
        self.alerts_by_rule: dict[tuple[str, str], int] = {}  # (rule, priority label) -> n
        self._last_suppressed_at = -_SUPPRESSION_LOG_QUIET_S
        self._closed = False

    @property
    def all_outputs(self) -> tuple[Output, ...]:
        return self.outputs + ((self.store,) if self.store is not None else ())

    def emit(self, alert: Alert, held: bool = False) -> None:
        """Never blocks: every output queues (or drops and counts) on its own.

        ``held``: a repeat that alert grouping summarises later; stored, never notified.
        """
        self.emit_batch([alert], [held] if held else None)

    def emit_batch(self, alerts: Sequence[Alert], held: Sequence[bool] | None = None) -> None:
        """``emit`` for the alerts of one worker batch, in order: one lock round-trip per output
        instead of one per alert; each alert is sealed (encoded once, by the first output
        thread that writes it, for all of them).

        ``held[i]``: alert i is a repeat that grouping holds back (None: none is).
        """
        stored: list[tuple[Alert, bool]] = []
        notified: list[Alert] = []
        store = self.store
        min_priority = self.min_priority
        with self._lock:
            by_rule = self.alerts_by_rule
            for i, alert in enumerate(alerts):
                if alert.priority > min_priority:
                    self.filtered += 1
                    continue
                self.alerts += 1
                key = (alert.rule, PRIORITY_LABELS[alert.priority])
                by_rule[key] = by_rule.get(key, 0) + 1
                if held is not None and held[i]:
                    self.grouped += 1
                    if store is not None:
                        alert.seal()
                        stored.append((alert, True))
                    continue
                notify = self.rate_limit is None or self._allow(alert)
                alert.seal()
                if store is not None:
                    stored.append((alert, not notify))
                if notify:
                    notified.append(alert)
        if store is not None and stored:
            store.emit_records(stored)
        if notified:
            for output in self.outputs:
                output.emit_many(notified)

    def _allow(self, alert: Alert) -> bool:
        """The rate limit's decision for one notification (called with the lock held)."""
        assert self.rate_limit is not None
        if self.rate_limit.allow():
            return True
        self.suppressed += 1
        self.suppressed_by_rule[alert.rule] = self.suppressed_by_rule.get(alert.rule, 0) + 1
        now = time.monotonic()
        if now - self._last_suppressed_at >= _SUPPRESSION_LOG_QUIET_S:
            log.warning(
                "rate limit reached (%g alerts/s, burst %d): notifications are"
                " suppressed and counted per rule; the alert store keeps every alert",
                self.rate_limit.rate,
                int(self.rate_limit.burst),
            )
        self._last_suppressed_at = now
        return False

    def flush(self, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        ok = True
        for output in self.all_outputs:
            ok = output.flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def close(self, timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S) -> None:
        """Drain and flush every output in parallel, all within ``timeout_s``."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout_s
        outputs = self.all_outputs
        for output in outputs:
            output.begin_close(deadline)
        for output in outputs:
            output.close(max(0.0, deadline - time.monotonic()))
        if self.suppressed:
            top = sorted(self.suppressed_by_rule.items(), key=lambda kv: -kv[1])[:10]
            log.warning(
                "rate limit suppressed %d notifications: %s",
                self.suppressed,
                ", ".join(f"{rule}: {n}" for rule, n in top),
            )

    def stats(self) -> dict[str, Any]:
        """Totals and per-output counters (``sent``/``failed``/``dropped``/``queued``...)."""
        with self._lock:
            return {
                "alerts": self.alerts,
                "filtered": self.filtered,
                "suppressed": self.suppressed,
                "grouped": self.grouped,
                "suppressed_by_rule": dict(self.suppressed_by_rule),
                "outputs": {output.name: output.stats() for output in self.all_outputs},
            }

    def dropped(self) -> int:
        """Alerts some output never tried to deliver (full queues, shutdown deadline)."""
        return sum(output.stats()["dropped"] for output in self.all_outputs)

    def summary(self) -> str:
        """One line for the final counters the agent prints at exit."""
        parts = [f"alerts={self.alerts}", f"suppressed={self.suppressed}",
                 f"grouped={self.grouped}"]
        for output in self.all_outputs:
            s = output.stats()
            parts.append(
                f"{output.name}: sent={s['sent']} failed={s['failed']} dropped={s['dropped']}"
            )
        return " ".join(parts)
