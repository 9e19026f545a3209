"""Alert store, its WAL/SHM files, alert files and captures: readable by their owner only."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest

from sysward.alert import Alert, Priority
from sysward.outputs import FileOutput, SqliteOutput


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _alert() -> Alert:
    return Alert(time=time.time_ns(), rule="r", priority=Priority.NOTICE, output="o",
                 output_fields={"proc.cmdline": "sh -c secret"}, tags=[], hostname="h")


@pytest.fixture()
def open_umask() -> object:
    old = os.umask(0o022)  # the usual umask: files 0644 and directories 0755 unless we care
    yield
    os.umask(old)


def test_store_wal_and_shm_are_0600_in_a_0700_directory(tmp_path: Path, open_umask: object) -> None:
    db = tmp_path / "new" / "deeper" / "alerts.db"
    out = SqliteOutput(db, retention_interval_s=0)
    out.emit(_alert())
    assert out.flush(5.0)
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    assert wal.exists() and shm.exists()  # while the writer is open
    assert (_mode(db), _mode(wal), _mode(shm)) == (0o600, 0o600, 0o600)
    assert _mode(db.parent) == 0o700 and _mode(db.parent.parent) == 0o700
    out.close(1.0)
    assert _mode(db) == 0o600


def test_existing_directory_keeps_its_mode(tmp_path: Path, open_umask: object) -> None:
    d = tmp_path / "shared"
    d.mkdir(mode=0o755)
    out = SqliteOutput(d / "alerts.db", retention_interval_s=0)
    out.close(1.0)
    assert _mode(d) == 0o755 and _mode(d / "alerts.db") == 0o600


def test_readable_store_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "alerts.db"
    SqliteOutput(db, retention_interval_s=0).close(1.0)
    os.chmod(db, 0o644)
    with caplog.at_level(logging.WARNING, logger="sysward"):
        SqliteOutput(db, retention_interval_s=0).close(1.0)
    assert any("readable by other users" in r.getMessage() and "chmod 600" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    os.chmod(db, 0o600)
    with caplog.at_level(logging.WARNING, logger="sysward"):
        SqliteOutput(db, retention_interval_s=0).close(1.0)
    assert not [r for r in caplog.records if "readable" in r.getMessage()]


def test_alert_file_and_its_rotations_are_0600(tmp_path: Path, open_umask: object) -> None:
    path = tmp_path / "logs" / "alerts.jsonl"
    out = FileOutput(path, max_bytes=300, backups=2)
    for _ in range(20):
        out.emit(_alert())
    assert out.flush(5.0)
    out.close(1.0)
    files = sorted(tmp_path.glob("logs/alerts.jsonl*"))
    assert len(files) == 3 and out.rotations > 0
    assert {_mode(f) for f in files} == {0o600}
    assert _mode(path.parent) == 0o700


def test_alert_file_appends_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"x" * 10 + b"\n")
    out = FileOutput(path)
    out.emit(_alert())
    out.close(1.0)
    assert path.read_bytes().startswith(b"x" * 10 + b"\n{")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a command as uid 65534")
def test_other_user_cannot_read_the_store() -> None:
    import shutil
    import subprocess
    import sys
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="sysward-private-"))
    try:
        os.chmod(d, 0o755)  # a directory others may enter: only the file's mode protects it
        db = d / "alerts.db"
        out = SqliteOutput(db, retention_interval_s=0)
        out.emit(_alert())
        out.close(1.0)
        proc = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
             "-m", "sysward", "alerts", "--db", str(db), "--json"],
            capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        assert "secret" not in proc.stdout
        assert "Traceback" not in proc.stderr
        assert "permission" in proc.stderr.lower()
        assert proc.stderr.count("\n") == 1
    finally:
        shutil.rmtree(d)
