"""DropWatch: drops turned into rate-limited reports (stderr line, internal alert, health)."""

from __future__ import annotations

from sysward.agent.drops import DROP_ALERT_RULE, DropCounts, DropWatch
from sysward.alert import Priority


def test_first_drop_is_reported_at_once_then_rate_limited() -> None:
    w = DropWatch(interval_s=10.0)
    t0 = 1000.0
    assert w.check(DropCounts(events=100), at=t0) is None  # nothing dropped
    r = w.check(DropCounts(kernel=5, queue=7, events=200), at=t0 + 1)
    assert r is not None and r.stages == {"kernel": 5, "queue": 7} and r.total == 12
    assert "raise --ringbuf-mb" in r.warning() and "raise --queue-size" in r.warning()
    assert "dropping: 12 of 200 events lost" in r.warning()
    # more drops within the interval: held back, then reported together
    assert w.check(DropCounts(kernel=9, queue=7, events=300), at=t0 + 5) is None
    assert w.check(DropCounts(kernel=20, queue=7, events=400), at=t0 + 8) is None
    r2 = w.check(DropCounts(kernel=20, queue=7, events=400), at=t0 + 11.5)
    assert r2 is not None and r2.stages == {"kernel": 15} and r2.events == 200
    assert w.reports == 2
    assert w.check(DropCounts(kernel=20, queue=7, events=500), at=t0 + 30) is None


def test_health_detail_while_recent() -> None:
    w = DropWatch(interval_s=10.0)
    assert w.dropping(at=0.0) is None
    w.check(DropCounts(decoder=3, events=10), at=100.0)
    detail = w.dropping(at=105.0)
    assert detail is not None and detail.startswith("dropping: decoder 3")
    assert w.dropping(at=125.0) is None  # quiet for two intervals: healthy again


def test_output_drops_and_a_reload_that_resets_them() -> None:
    w = DropWatch(interval_s=1.0)
    r = w.check(DropCounts(outputs={"http": 4, "file": 0}), at=10.0)
    assert r is not None and r.outputs == {"http": 4} and "http 4" in r.warning()
    assert "outputs.http.queue_size" in r.warning()
    # new outputs after a reload: their counters start again at 0
    r = w.check(DropCounts(outputs={"http": 2}), at=12.0)
    assert r is not None and r.outputs == {"http": 2}


def test_internal_alert_shape() -> None:
    w = DropWatch()
    r = w.check(DropCounts(kernel=1, queue=2, outputs={"sqlite": 3}, events=50), at=5.0)
    assert r is not None
    a = r.alert("host1", now_ns=123)
    assert a.rule == DROP_ALERT_RULE and a.priority == Priority.CRITICAL
    assert a.source == "internal" and a.hostname == "host1" and a.time == 123
    assert a.output_fields["n_drops"] == 6 and a.output_fields["n_drops_kernel"] == 1
    assert a.output_fields["n_drops_output_sqlite"] == 3
    d = a.to_falco_dict()
    assert d["rule"] == DROP_ALERT_RULE and "event drop" in d["output"]
