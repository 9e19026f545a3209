"""Outputs under faults: the webhook down then back, the store deleted or corrupted while
the agent writes to it.  Real sockets, real sqlite files."""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sysward.alert import Alert, Priority
from sysward.outputs import AlertStore, HttpOutput, SqliteOutput


def _alert(n: int) -> Alert:
    return Alert(time=time.time_ns(), rule="r", priority=Priority.WARNING, output=f"n={n}",
                 output_fields={"n": n}, tags=[], hostname="h")


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


class Receiver:
    def __init__(self, port: int) -> None:
        got: list[int] = []
        self.got = got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                got.append(json.loads(body)["output_fields"]["n"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_down_then_back(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on (yet)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = HttpOutput(f"http://127.0.0.1:{port}/", queue_size=20, batch_size=5,
                     flush_interval_s=0.0, max_retries=50, backoff_s=0.05, timeout_s=1.0)
    rx: Receiver | None = None
    try:
        with caplog.at_level(logging.WARNING):
            for n in range(60):
                out.emit(_alert(n))
            time.sleep(0.6)  # down: the first batch is being retried, the queue is full
            st = out.stats()
            assert st["sent"] == 0 and st["retries"] >= 2
            # the bounded queue (20) plus at most the batch in hand (5) wait; the rest is
            # dropped and counted
            held = 60 - st["dropped"]
            assert 20 <= held <= 25
            rx = Receiver(port)  # back
            _wait(lambda: len(rx.got) >= held, 20, f"delivered {rx.got if rx else []}")
            time.sleep(0.3)
        assert rx.got == list(range(held))  # the oldest kept, in order, none twice
        st = out.stats()
        assert st["sent"] == held and st["failed"] == 0 and st["dropped"] == 60 - held
        for n in range(60, 65):  # and it keeps working
            out.emit(_alert(n))
        assert out.flush(5.0)
        assert rx.got[-5:] == list(range(60, 65))
    finally:
        out.close(1.0)
        if rx is not None:
            rx.close()


def test_store_deleted_while_running_is_made_anew(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "alerts.db"
    out = SqliteOutput(db, retention_interval_s=0)
    try:
        out.emit(_alert(1))
        assert out.flush(5.0)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        with caplog.at_level(logging.WARNING, logger="sysward"):
            out.emit(_alert(2))
            assert out.flush(5.0)
        assert any("was deleted or replaced" in r.getMessage() for r in caplog.records)
        with AlertStore(db) as store:
            assert [r.alert.output_fields["n"] for r in store.query()] == [2]
        assert out.stats()["recreated"] == 1 and out.stats()["failed"] == 0
        assert db.stat().st_mode & 0o777 == 0o600
    finally:
        out.close(1.0)


def test_store_corrupted_while_running_is_set_aside(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "alerts.db"
    out = SqliteOutput(db, retention_interval_s=0)
    try:
        for n in range(50):
            out.emit(_alert(n))
        assert out.flush(5.0)
        # what a bad disk or a stray `dd` does: the pages become garbage in place
        with open(db, "r+b") as f:
            f.write(b"\xde\xad\xbe\xef" * 4096)
        for suffix in ("-wal", "-shm"):  # ... and its WAL and index, so sqlite reads it again
            with open(f"{db}{suffix}", "r+b") as f:
                f.write(b"\x00" * 32768)
        with caplog.at_level(logging.WARNING, logger="sysward"):
            out.emit(_alert(100))
            assert out.flush(5.0)
        assert any("is corrupt" in r.getMessage() for r in caplog.records), \
            [r.getMessage() for r in caplog.records]
        aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
        assert aside, list(tmp_path.iterdir())  # kept for inspection, not deleted
        with AlertStore(db) as store:
            assert [r.alert.output_fields["n"] for r in store.query()] == [100]
        assert out.stats()["recreated"] == 1
    finally:
        out.close(1.0)
    with pytest.raises(sqlite3.DatabaseError):
        conn = sqlite3.connect(min(aside))
        conn.execute("SELECT count(*) FROM alerts").fetchall()
