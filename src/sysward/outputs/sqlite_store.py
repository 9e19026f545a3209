"""The embedded alert store: a sqlite file written by one worker thread, read by ``sysward alerts``.

Writing: alerts queue up (bounded, drops counted) and the worker inserts whatever is queued
with one ``executemany`` in one transaction, so a burst costs one commit, not one per alert.
WAL mode lets ``sysward alerts`` read while the agent writes.  Retention runs at start and
every ``retention_interval_s``: rows older than ``retention_hours`` go, then the oldest rows
until the data fits ``max_size_mb``; the file is created with incremental auto-vacuum so
freed pages are handed back to the file system.

Every alert that passes the minimum priority is stored, including those whose notifications
the rate limiter suppressed (``suppressed = 1``): the store is the record, the rate limit
only protects the notification channels.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sysward.alert import Alert, Priority
from sysward.errors import SyswardError
from sysward.outputs.base import QueuedOutput
from sysward.private_files import create_private, warn_if_shared

log = logging.getLogger("sysward")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id            INTEGER PRIMARY KEY,
    time_ns       INTEGER NOT NULL,            -- event time, ns since the epoch
    rule          TEXT    NOT NULL,
    priority      INTEGER NOT NULL,            -- Priority value: 0 emergency .. 7 debug
    output        TEXT    NOT NULL,
    output_fields TEXT    NOT NULL,            -- JSON object
    tags          TEXT    NOT NULL,            -- JSON array
    hostname      TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    action_taken  TEXT,
    suppressed    INTEGER NOT NULL DEFAULT 0   -- 1: the rate limit held back its notification
);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (time_ns);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule, time_ns);
DROP INDEX IF EXISTS alerts_priority;
"""
# No index on priority: eight values, and every query orders by time, so the time index serves
# a priority filter as well; keeping a third index up to date cost ~1 us per stored alert
# (sysward bench alerts), a fifth of the whole path's budget.  Stores made before lose it here.
_INSERT = (
    "INSERT INTO alerts (time_ns, rule, priority, output, output_fields, tags, hostname,"
    " source, action_taken, suppressed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = (
    "id, time_ns, rule, priority, output, output_fields, tags, hostname, source,"
    " action_taken, suppressed"
)


WRITER_CACHE_KIB = 256
_ROWS_PER_INSERT = 200  # 10 values a row: well under SQLite's bound on bound variables


@functools.lru_cache(maxsize=8)
def _insert_rows(n: int) -> str:
    return _INSERT + ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" * (n - 1)


def _row(alert: Alert, suppressed: bool) -> tuple[Any, ...]:
    return (
        alert.time,
        alert.rule,
        int(alert.priority),
        alert.output,
        alert.fields_json().decode(),  # the bytes of the JSON line's output_fields
        orjson.dumps(alert.tags).decode(),
        alert.hostname,
        alert.source,
        alert.action_taken,
        1 if suppressed else 0,
    )


def apply_retention(
    conn: sqlite3.Connection, retention_ns: int, max_bytes: int, now_ns: int | None = None
) -> int:
    """Delete rows older than ``retention_ns`` and the oldest rows beyond ``max_bytes``.

    Size is the bytes of pages in use (the file can be larger until it is vacuumed).
    Returns the number of rows deleted.  0 disables either bound.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    deleted = 0
    with conn:
        if retention_ns > 0:
            deleted += conn.execute(
                "DELETE FROM alerts WHERE time_ns < ?", (now_ns - retention_ns,)
            ).rowcount
        if max_bytes > 0:
            for _ in range(16):
                used = _used_bytes(conn)
                if used <= max_bytes:
                    break
                rows = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
                if rows == 0:
                    break
                # Aim at 90 % of the bound so the next insert does not trigger it again.
                excess = 1.0 - (0.9 * max_bytes) / used
                n = max(1, math.ceil(rows * excess))
                deleted += conn.execute(
                    "DELETE FROM alerts WHERE id IN"
                    " (SELECT id FROM alerts ORDER BY time_ns, id LIMIT ?)",
                    (n,),
                ).rowcount
    if deleted:
        conn.execute("PRAGMA incremental_vacuum")
    return deleted


def _used_bytes(conn: sqlite3.Connection) -> int:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * page_size)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_corruption(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def _open_writer(path: Path) -> sqlite3.Connection:
    # Created 0600 before sqlite opens it: sqlite gives the -wal and -shm files the mode of
    # the database file, so the three are private from the first byte.
    if not create_private(path):
        warn_if_shared(path, "the alert store")
    # The connection is made here and then used only by the worker thread.
    # `with conn:` wraps each batch in one transaction (sqlite3 begins it before the DML).
    conn = sqlite3.connect(path, check_same_thread=False, timeout=1.0)
    # auto_vacuum takes effect only before the first table exists, i.e. on a new file.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"journal_mode is {mode}, WAL unavailable")
    # WAL + NORMAL: a crash of the agent loses nothing; a power cut may lose the last batch.
    conn.execute("PRAGMA synchronous = NORMAL")
    # The writer appends: it needs the pages of the b-tree edges, not sqlite's default 2 MB
    # page cache, which otherwise fills slowly as the store grows (RSS creeping for hours).
    conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
    with conn:
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


class SqliteOutput(QueuedOutput):
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention_hours: float = 168.0,
        max_size_mb: float = 512.0,
        retention_interval_s: float = 300.0,
        queue_size: int = 20_000,
        batch_size: int = 1000,
    ) -> None:
        self.path = Path(path)
        self._retention_ns = int(retention_hours * 3600 * 1e9)
        self._max_bytes = int(max_size_mb * 1024 * 1024)
        self.retention_deleted = 0
        self.recreated = 0  # stores made anew after the file was deleted or corrupted
        try:
            self._conn: sqlite3.Connection | None = _open_writer(self.path)
            self._inode = _inode(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise SyswardError(
                f"cannot open the alert store {self.path}: {exc}; choose a writable path"
                " (--set outputs.sqlite.path=PATH) or turn it off"
                " (--set outputs.sqlite.enabled=false)."
            ) from None
        super().__init__(
            "sqlite",
            queue_size=queue_size,
            batch_size=batch_size,
            housekeeping_s=retention_interval_s if retention_interval_s > 0 else None,
        )

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out["retention_deleted"] = self.retention_deleted
        out["recreated"] = self.recreated
        return out

    def emit(self, alert: Alert) -> None:
        self._put((alert, False))

    def emit_record(self, alert: Alert, suppressed: bool) -> None:
        """Store the alert, noting whether the rate limit held back its notification."""
        self._put((alert, suppressed))

    def emit_records(self, records: list[tuple[Alert, bool]]) -> None:
        """``emit_record`` for each (alert, suppressed), in order, in one step."""
        self._put_many(records)

    def _open_sink(self) -> None:
        self._housekeeping()

    def _write_batch(self, batch: list[tuple[Alert, bool]]) -> int:
        if self._conn is None or _inode(self.path) != self._inode:
            # Deleted (or replaced) under us: sqlite would go on writing into a file nobody
            # can open any more, and every later alert would be lost to `sysward alerts`.
            self._recreate("was deleted or replaced while the agent ran")
        try:
            return self._insert(batch)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _is_corruption(exc):
                raise  # disk full, locked...: the batch fails and is counted, the file stays
            self._set_aside(f"is corrupt ({exc})")
            return self._insert(batch)

    def _recreate(self, why: str) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        log.warning("the alert store %s %s; starting a new one at the same path", self.path, why)
        self._conn = _open_writer(self.path)
        self._inode = _inode(self.path)
        self.recreated += 1

    def _set_aside(self, why: str) -> None:
        """Keep a corrupt file for inspection (never delete what an operator may need)."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, Path(f"{aside}{suffix}"))
        self._recreate(f"{why}; it was moved to {aside}")

    def _insert(self, batch: list[tuple[Alert, bool]]) -> int:
        assert self._conn is not None
        # Multi-row INSERTs rather than executemany: the sqlite3 module releases the GIL
        # around every step, and next to a CPU-bound rule worker each re-acquisition can wait
        # a whole switch interval; one statement per chunk of rows is one step per chunk.
        rows = [_row(alert, sup) for alert, sup in batch]
        with self._conn:
            for i in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[i : i + _ROWS_PER_INSERT]
                self._conn.execute(_insert_rows(len(chunk)),
                                   [v for row in chunk for v in row])
        return len(batch)

    def _housekeeping(self) -> None:
        if self._conn is None:
            return
        try:
            self.retention_deleted += apply_retention(
                self._conn, self._retention_ns, self._max_bytes
            )
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            self._set_aside(f"is corrupt ({exc})")

    def _close_sink(self) -> None:
        if self._conn is not None:
            # Fold the WAL back into the main file so a reader finds one tidy file.
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()
                self._conn = None


# -- reading -----------------------------------------------------------------------------


@dataclass(slots=True)
class StoredAlert:
    id: int
    alert: Alert
    suppressed: bool


class AlertStore:
    """Read access to the store (``sysward alerts``); safe while the agent writes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        where = f"cannot read the alert store {self.path}"
        if not self.path.exists():
            raise SyswardError(
                f"no alert store at {self.path}; start the agent with 'sysward run'"
                " (the store is on by default) or point --db at an existing store."
            )
        if self.path.is_dir():
            raise SyswardError(f"{where}: it is a directory; point --db at the store file"
                               " (outputs.sqlite.path, by default /var/lib/sysward/alerts.db).")
        if not os.access(self.path, os.R_OK):
            raise SyswardError(f"{where}: permission denied (the store is readable by its owner"
                               " only); run as root or as the user that runs the agent.")
        try:
            self._conn = sqlite3.connect(
                self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=2.0
            )
            self._conn.execute("SELECT 1 FROM alerts LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            message = str(exc)
            if "no such table" in message or "not a database" in message:
                raise SyswardError(f"{where}: it is not a sysward alert store; point --db at"
                                   " the file that outputs.sqlite.path names.") from None
            raise SyswardError(f"{where}: {message}; check the file and its directory"
                               " (a reader needs the -wal and -shm files next to it).") from None

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def query(
        self,
        *,
        since_ns: int | None = None,
        rule: str | None = None,
        min_priority: Priority | None = None,
        after_id: int | None = None,
        until_id: int | None = None,
        limit: int | None = None,
    ) -> list[StoredAlert]:
        """Matching alerts, oldest first.  With ``limit``: the newest ``limit`` of them."""
        where: list[str] = []
        params: list[Any] = []
        if since_ns is not None:
            where.append("time_ns >= ?")
            params.append(since_ns)
        if rule is not None:
            where.append("rule = ?")
            params.append(rule)
        if min_priority is not None:
            where.append("priority <= ?")  # lower value = more severe
            params.append(int(min_priority))
        if after_id is not None:
            where.append("id > ?")
            params.append(after_id)
        if until_id is not None:
            where.append("id <= ?")
            params.append(until_id)
        sql = f"SELECT {_COLUMNS} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if limit is not None:
            sql += " ORDER BY time_ns DESC, id DESC LIMIT ?"
            params.append(limit)
            rows = self._conn.execute(sql, params).fetchall()
            rows.reverse()
        else:
            sql += " ORDER BY time_ns, id"
            rows = self._conn.execute(sql, params).fetchall()
        return [_from_row(row) for row in rows]

    def follow_after(self, after_id: int, **filters: Any) -> tuple[int, list[StoredAlert]]:
        """(new cursor, matching rows inserted after ``after_id`` in insertion order).

        The cursor is the newest id at query time, so rows the filters skip are not read
        again and no row inserted meanwhile is missed.
        """
        top = self.last_id()
        if top <= after_id:
            return after_id, []
        rows = self.query(after_id=after_id, until_id=top, **filters)
        rows.sort(key=lambda s: s.id)
        return top, rows

    def last_id(self) -> int:
        return int(self._conn.execute("SELECT coalesce(max(id), 0) FROM alerts").fetchone()[0])

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM alerts").fetchone()[0])

    def __iter__(self) -> Iterator[StoredAlert]:
        return iter(self.query())


def _from_row(row: tuple[Any, ...]) -> StoredAlert:
    (id_, time_ns, rule, priority, output, fields, tags, hostname, source, action, sup) = row
    alert = Alert(
        time=time_ns,
        rule=rule,
        priority=Priority(priority),
        output=output,
        output_fields=orjson.loads(fields),
        tags=orjson.loads(tags),
        hostname=hostname,
        source=source,
        action_taken=action,
    )
    return StoredAlert(id=id_, alert=alert, suppressed=bool(sup))
