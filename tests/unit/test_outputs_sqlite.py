"""The sqlite alert store on a real file: WAL, batched writes, retention, queries."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from sysward.alert import Alert, Priority
from sysward.errors import SyswardError
from sysward.outputs import AlertStore, SqliteOutput, apply_retention

HOUR_NS = 3600 * 1_000_000_000


def make_alert(t: int, rule: str = "Shell in container", prio: Priority = Priority.NOTICE,
               n: int = 0) -> Alert:
    return Alert(time=t, rule=rule, priority=prio, output=f"shell spawned (n={n})",
                 output_fields={"proc.name": "sh", "n": n}, tags=["T1059"], hostname="h")


def test_wal_schema_indexes_and_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "alerts.db"
    store = SqliteOutput(db, retention_interval_s=0)
    now = time.time_ns()
    alert = make_alert(now, n=1)
    alert.action_taken = "killed"
    store.emit(alert)
    store.emit_record(make_alert(now + 1, n=2), suppressed=True)
    assert store.flush(5.0)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert indexes == {"alerts_time", "alerts_rule"}
    # a priority filter is served by the time index the query orders by (no priority index)
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM alerts WHERE priority <= 3"
        " ORDER BY time_ns DESC, id DESC LIMIT 10"))
    assert "alerts_time" in plan, plan
    conn.close()
    store.close(1.0)
    with AlertStore(db) as reader:
        rows = reader.query()
    assert [r.alert.output_fields["n"] for r in rows] == [1, 2]
    assert rows[0].alert == alert  # every field survives the round trip
    assert rows[0].alert.to_falco_dict() == alert.to_falco_dict()
    assert [r.suppressed for r in rows] == [False, True]


def test_batches_are_written_in_few_transactions(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    store = SqliteOutput(db, retention_interval_s=0, batch_size=1000)
    now = time.time_ns()
    start = time.perf_counter()
    for i in range(5000):
        store.emit(make_alert(now + i, n=i))
    emit_s = time.perf_counter() - start
    assert store.flush(10.0)
    store.close(1.0)
    assert store.stats()["sent"] == 5000 and store.stats()["dropped"] == 0
    with AlertStore(db) as reader:
        assert reader.count() == 5000
    assert emit_s < 1.0  # emit only queues


def test_queries_by_since_rule_priority_and_limit(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    store = SqliteOutput(db, retention_interval_s=0)
    now = time.time_ns()
    store.emit(make_alert(now - 3 * HOUR_NS, "Old rule", Priority.CRITICAL, 0))
    store.emit(make_alert(now - 30 * 60 * 10**9, "Shell in container", Priority.NOTICE, 1))
    store.emit(make_alert(now - 10 * 10**9, "Read shadow", Priority.WARNING, 2))
    store.emit(make_alert(now - 5 * 10**9, "Read shadow", Priority.DEBUG, 3))
    store.close(1.0)
    with AlertStore(db) as r:
        def n(rows: Iterable[Any]) -> list[Any]:
            return [x.alert.output_fields["n"] for x in rows]
        assert n(r.query()) == [0, 1, 2, 3]
        assert n(r.query(since_ns=now - HOUR_NS)) == [1, 2, 3]
        assert n(r.query(rule="Read shadow")) == [2, 3]
        assert n(r.query(min_priority=Priority.WARNING)) == [0, 2]
        assert n(r.query(min_priority=Priority.WARNING, since_ns=now - HOUR_NS)) == [2]
        assert n(r.query(limit=2)) == [2, 3]  # the newest two, oldest first
        top, rows = r.follow_after(2)
        assert top == 4 and n(rows) == [2, 3]
        assert r.follow_after(4) == (4, [])


def test_retention_by_age_deletes_old_rows_at_start(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    now = time.time_ns()
    store = SqliteOutput(db, retention_hours=0, max_size_mb=0, retention_interval_s=0)
    for i in range(10):
        store.emit(make_alert(now - (10 - i) * HOUR_NS, n=i))  # 10 h ... 1 h old
    store.close(1.0)
    # Restart with a 4.5 h retention: the agent trims at start.
    store = SqliteOutput(db, retention_hours=4.5, max_size_mb=0, retention_interval_s=0)
    assert store.flush(5.0)
    store.close(1.0)
    assert store.stats()["retention_deleted"] == 6
    with AlertStore(db) as r:
        assert [x.alert.output_fields["n"] for x in r.query()] == [6, 7, 8, 9]


def test_retention_by_size_deletes_oldest(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    now = time.time_ns()
    store = SqliteOutput(db, retention_hours=0, max_size_mb=0, retention_interval_s=0)
    for i in range(4000):
        store.emit(make_alert(now - 4000 + i, n=i))
    store.close(2.0)
    conn = sqlite3.connect(db)
    size_before = db.stat().st_size
    max_bytes = 200 * 1024
    assert size_before > 2 * max_bytes
    deleted = apply_retention(conn, 0, max_bytes)
    remaining = [r[0] for r in conn.execute("SELECT time_ns FROM alerts ORDER BY time_ns")]
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    used = (conn.execute("PRAGMA page_count").fetchone()[0]
            - conn.execute("PRAGMA freelist_count").fetchone()[0]) * page
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert deleted > 0 and len(remaining) == 4000 - deleted
    assert used <= max_bytes
    # the oldest went: what is left is the newest, contiguous
    assert remaining[0] == now - 4000 + deleted and remaining[-1] == now - 1
    assert db.stat().st_size < size_before  # incremental vacuum gave pages back


def test_periodic_retention_runs_on_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    now = time.time_ns()
    store = SqliteOutput(db, retention_hours=1, max_size_mb=0, retention_interval_s=0.1)
    store.emit(make_alert(now - 2 * HOUR_NS, n=0))  # older than the retention
    store.emit(make_alert(now, n=1))
    deadline = time.monotonic() + 3
    while store.stats()["retention_deleted"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    store.close(1.0)
    with AlertStore(db) as r:
        assert [x.alert.output_fields["n"] for x in r.query()] == [1]


def test_reader_errors_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(SyswardError, match=r"^no alert store at .*missing\.db; start"):
        AlertStore(tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SyswardError, match="not a sysward alert store"):
        AlertStore(junk)


def test_unwritable_store_path_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SyswardError, match="cannot open the alert store"):
        SqliteOutput(blocker / "alerts.db")


def test_store_made_before_loses_the_priority_index(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    SqliteOutput(db, retention_interval_s=0).close(1.0)
    conn = sqlite3.connect(db)
    conn.execute("CREATE INDEX alerts_priority ON alerts (priority, time_ns)")
    conn.commit()
    conn.close()
    store = SqliteOutput(db, retention_interval_s=0)
    store.emit(make_alert(time.time_ns(), n=1))
    store.close(1.0)
    conn = sqlite3.connect(db)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert indexes == {"alerts_time", "alerts_rule"}
    assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1
    conn.close()
