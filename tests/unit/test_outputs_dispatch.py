"""Dispatcher, rate limit, stdout output and the config-driven factory."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

from sysward.alert import Alert, Priority
from sysward.config import apply_output_specs, load_config
from sysward.outputs import (
    AlertStore,
    Dispatcher,
    FileOutput,
    QueuedOutput,
    SqliteOutput,
    StdoutOutput,
    TokenBucket,
    build_outputs,
)


def make_alert(i: int = 0, rule: str = "R", prio: Priority = Priority.WARNING) -> Alert:
    return Alert(time=1_700_000_000_000_000_000 + i, rule=rule, priority=prio,
                 output=f"something happened n={i}", output_fields={"n": i}, hostname="h")


class BlockingOutput(QueuedOutput):
    """A sink that hangs until released: stands in for a stuck disk or daemon."""

    def __init__(self, queue_size: int) -> None:
        self.release = threading.Event()
        self.written: list[Alert] = []
        super().__init__("blocking", queue_size=queue_size, batch_size=1)

    def _write_batch(self, batch: list[Alert]) -> int:
        self.release.wait(10)
        self.written.extend(batch)
        return len(batch)


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert [bucket.allow(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.allow(0.05) is False  # half a token
    assert bucket.allow(0.1) is True  # one token after 0.1 s
    assert sum(bucket.allow(100.0) for _ in range(10)) == 5  # refill is capped at burst
    assert TokenBucket(rate=0, burst=1).unlimited


def test_stdout_text_and_json() -> None:
    text, js = io.BytesIO(), io.BytesIO()
    a, b = StdoutOutput("text", stream=text), StdoutOutput("json", stream=js)
    alert = make_alert(3)
    a.emit(alert)
    b.emit(alert)
    a.close(1.0)
    b.close(1.0)
    assert text.getvalue().decode() == alert.text_line() + "\n"
    assert text.getvalue().decode().split(" ", 1)[1] == "Warning something happened n=3\n"
    assert json.loads(js.getvalue()) == alert.to_falco_dict()


def test_min_priority_and_fan_out(tmp_path: Path) -> None:
    stream = io.BytesIO()
    out = StdoutOutput("json", stream=stream)
    file = FileOutput(tmp_path / "a.jsonl")
    d = Dispatcher([out, file], min_priority=Priority.WARNING)
    d.emit(make_alert(1, prio=Priority.NOTICE))
    d.emit(make_alert(2, prio=Priority.WARNING))
    d.emit(make_alert(3, prio=Priority.CRITICAL))
    d.close(1.0)
    assert [json.loads(x)["output_fields"]["n"] for x in stream.getvalue().splitlines()] == [2, 3]
    assert len((tmp_path / "a.jsonl").read_bytes().splitlines()) == 2
    assert d.stats()["filtered"] == 1 and d.stats()["alerts"] == 2


def test_rate_limit_suppresses_counts_per_rule_and_store_keeps_all(tmp_path: Path) -> None:
    stream = io.BytesIO()
    store = SqliteOutput(tmp_path / "a.db", retention_interval_s=0)
    d = Dispatcher([StdoutOutput("json", stream=stream)], store=store,
                   rate_limit=TokenBucket(rate=0.001, burst=10))
    for i in range(30):
        d.emit(make_alert(i, rule="Noisy" if i % 3 else "Rare"))
    d.close(1.0)
    notified = [json.loads(x)["output_fields"]["n"] for x in stream.getvalue().splitlines()]
    assert notified == list(range(10))
    stats = d.stats()
    assert stats["suppressed"] == 20
    # rules of alerts 10..29: 20 alerts, i % 3 == 0 -> Rare (12, 15, ..., 27: 6 of them)
    assert stats["suppressed_by_rule"] == {"Noisy": 14, "Rare": 6}
    with AlertStore(tmp_path / "a.db") as r:
        rows = r.query()
    assert len(rows) == 30
    assert sum(row.suppressed for row in rows) == 20
    assert "suppressed=20" in d.summary()


def test_slow_output_drops_only_its_own_and_close_meets_deadline() -> None:
    fast_stream = io.BytesIO()
    fast = StdoutOutput("json", stream=fast_stream)
    slow = BlockingOutput(queue_size=5)
    d = Dispatcher([slow, fast])
    start = time.perf_counter()
    for i in range(100):
        d.emit(make_alert(i))
    assert time.perf_counter() - start < 0.1  # never blocked on the stuck sink
    assert fast.flush(2.0)
    assert len(fast_stream.getvalue().splitlines()) == 100
    s = slow.stats()
    assert s["dropped"] >= 100 - 6 and s["dropped"] + s["queued"] == 100
    t0 = time.monotonic()
    d.close(0.3)
    assert time.monotonic() - t0 < 0.5
    s = slow.stats()
    assert s["sent"] + s["failed"] + s["dropped"] + s["queued"] == 100
    assert d.dropped() >= 94
    slow.release.set()


def test_idle_worker_sleeps() -> None:
    """No busy polling: an idle output thread uses (almost) no CPU."""
    out = StdoutOutput("text", stream=io.BytesIO())
    store_like = [out]
    t0 = time.thread_time()
    cpu0 = time.process_time()
    time.sleep(0.5)
    cpu = time.process_time() - cpu0 - (time.thread_time() - t0)
    for o in store_like:
        o.close(0.5)
    assert cpu < 0.05


def test_build_outputs_from_config_and_specs(tmp_path: Path) -> None:
    cfg = load_config(None, {"outputs.sqlite.path": str(tmp_path / "s.db"),
                             "min_priority": "error", "rate_limit.rate": "0"})
    apply_output_specs(cfg, ["json", f"file:{tmp_path / 'f.jsonl'}"])
    d = build_outputs(cfg)
    names = sorted(o.name for o in d.all_outputs)
    assert names == ["file", "json", "sqlite"]
    assert d.min_priority == Priority.ERROR and d.rate_limit is None
    d.emit(make_alert(1, prio=Priority.CRITICAL))
    d.emit(make_alert(2, prio=Priority.WARNING))
    d.close(1.0)
    assert len((tmp_path / "f.jsonl").read_bytes().splitlines()) == 1
    with AlertStore(tmp_path / "s.db") as r:
        assert r.count() == 1


def _run_dispatch(tmp_path: Path,
                  batched: bool) -> tuple[bytes, list[tuple[int, bool]], dict[str, Any]]:
    """Alerts of mixed priorities, grouping holds and a rate limit, once through ``emit`` per
    alert and once through ``emit_batch``: everything observable must be the same."""
    stream = io.BytesIO()
    store = SqliteOutput(tmp_path / f"{batched}.db", retention_interval_s=0)
    d = Dispatcher([StdoutOutput("json", stream=stream)], store=store,
                   min_priority=Priority.NOTICE, rate_limit=TokenBucket(rate=0.001, burst=7))
    prios = [Priority.WARNING, Priority.DEBUG, Priority.CRITICAL, Priority.NOTICE]
    alerts = [make_alert(i, rule=f"R{i % 3}", prio=prios[i % 4]) for i in range(40)]
    held = [i % 5 == 0 for i in range(40)]
    if batched:
        d.emit_batch(alerts[:17], held[:17])
        d.emit_batch(alerts[17:], held[17:])
    else:
        for alert, h in zip(alerts, held, strict=True):
            d.emit(alert, h)
    d.close(1.0)
    with AlertStore(tmp_path / f"{batched}.db") as r:
        rows = [(row.alert.output_fields["n"], row.suppressed) for row in r.query()]
    stats = d.stats()
    stats["outputs"] = {k: {n: v for n, v in s.items() if n != "retention_deleted"}
                        for k, s in stats["outputs"].items()}
    return stream.getvalue(), rows, stats


def test_emit_batch_is_emit_per_alert(tmp_path: Path) -> None:
    one = _run_dispatch(tmp_path, batched=False)
    many = _run_dispatch(tmp_path, batched=True)
    assert one == many
    lines, rows, stats = many
    assert stats["filtered"] == 10 and stats["grouped"] == 6 and stats["suppressed"] > 0
    assert len(lines.splitlines()) == 7 and len(rows) == 30


def test_emit_batch_drops_what_does_not_fit_and_counts_it() -> None:
    slow = BlockingOutput(queue_size=5)
    d = Dispatcher([slow])
    d.emit_batch([make_alert(i) for i in range(20)])
    d.emit_batch([make_alert(i) for i in range(20, 30)])
    s = slow.stats()
    # the worker may have taken one item off the queue before blocking on it
    assert s["dropped"] + s["queued"] == 30 and s["dropped"] >= 30 - 6
    slow.release.set()
    d.close(1.0)
    s = slow.stats()
    assert s["sent"] + s["dropped"] == 30
