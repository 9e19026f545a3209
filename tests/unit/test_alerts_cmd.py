"""`sysward alerts` against a real store written by the sqlite output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sysward.alert import Alert, Priority
from sysward.cli.alerts_cmd import parse_since
from sysward.errors import SyswardError
from sysward.outputs import SqliteOutput

NOW = time.time_ns()
MIN_NS = 60 * 1_000_000_000


def make_alert(minutes_ago: float, rule: str, prio: Priority, n: int) -> Alert:
    return Alert(time=NOW - int(minutes_ago * MIN_NS), rule=rule, priority=prio,
                 output=f"event n={n}", output_fields={"n": n}, tags=["T1"], hostname="h")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "alerts.db"
    store = SqliteOutput(path, retention_interval_s=0)
    store.emit(make_alert(180, "Old", Priority.CRITICAL, 0))
    store.emit(make_alert(30, "Read shadow", Priority.WARNING, 1))
    store.emit(make_alert(20, "Shell spawned", Priority.NOTICE, 2))
    store.emit_record(make_alert(10, "Read shadow", Priority.ERROR, 3), suppressed=True)
    store.close(1.0)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "sysward", "alerts", *args],
                          capture_output=True, text=True, env=env, timeout=30)


def numbers(stdout: str) -> list[int]:
    return [json.loads(line)["output_fields"]["n"] for line in stdout.splitlines()]


def test_json_and_filters(db: Path) -> None:
    assert numbers(run("--db", str(db), "--json").stdout) == [0, 1, 2, 3]
    assert numbers(run("--db", str(db), "--json", "--since", "1h").stdout) == [1, 2, 3]
    assert numbers(run("--db", str(db), "--json", "--rule", "Read shadow").stdout) == [1, 3]
    assert numbers(run("--db", str(db), "--json", "--min-priority", "warning").stdout) == [0, 1, 3]
    assert numbers(run("--db", str(db), "--json", "--limit", "2").stdout) == [2, 3]
    line = json.loads(run("--db", str(db), "--json", "--limit", "1").stdout)
    assert set(line) == {"hostname", "output", "output_fields", "priority", "rule", "source",
                         "tags", "time"}
    assert line["priority"] == "Error"


def run_on_tty(*args: str) -> str:
    """stdout on a pseudo-terminal, as when a person runs the command."""
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "sysward", "alerts", *args], stdout=follower,
                            stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(30)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_table_on_a_terminal(db: Path) -> None:
    out = run_on_tty("--db", str(db), "--since", "1h")
    assert "Read shadow" in out and "Shell spawned" in out and "Old" not in out
    assert "Warning" in out and "event n=2" in out and "notification suppressed" in out
    assert "┃" in out or "│" in out  # a table
    assert "no alerts match." in run_on_tty("--db", str(db), "--rule", "nope")


def test_plain_lines_when_piped(db: Path) -> None:
    proc = run("--db", str(db), "--since", "1h")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3  # one line per alert, however long
    assert "│" not in proc.stdout and "┃" not in proc.stdout
    assert "[Read shadow]" in lines[0] and "Warning" in lines[0]
    assert "notification suppressed" in lines[2]
    empty = run("--db", str(db), "--rule", "nope")
    assert empty.stdout == "" and "no alerts match." in empty.stderr


def test_missing_db_is_one_sentence(tmp_path: Path) -> None:
    proc = run("--db", str(tmp_path / "none.db"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("sysward: error: no alert store at ")
    assert proc.stderr.count("\n") == 1


def test_bad_arguments(db: Path) -> None:
    for args, msg in [(["--since", "yesterday"], "--since 'yesterday' is neither"),
                      (["--min-priority", "loud"], "unknown priority 'loud'")]:
        proc = run("--db", str(db), *args)
        assert proc.returncode == 2 and msg in proc.stderr and "Traceback" not in proc.stderr


def test_follow_prints_new_rows(db: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sysward", "alerts", "--db", str(db), "--follow", "--json",
         "--interval", "0.1", "--since", "1h", "--rule", "Read shadow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["output_fields"]["n"] == 1
        assert json.loads(proc.stdout.readline())["output_fields"]["n"] == 3
        store = SqliteOutput(db, retention_interval_s=0)  # the agent keeps writing
        store.emit(make_alert(0, "Shell spawned", Priority.NOTICE, 4))  # filtered out
        store.emit(make_alert(0, "Read shadow", Priority.WARNING, 5))
        store.close(1.0)
        assert json.loads(proc.stdout.readline())["output_fields"]["n"] == 5
    finally:
        proc.terminate()
        proc.wait(5)


def test_parse_since() -> None:
    assert parse_since("90", now_ns=10**12) == 10**12 - 90 * 10**9
    assert parse_since("1.5h", now_ns=10**13) == 10**13 - 5400 * 10**9
    assert parse_since("2d", now_ns=10**15) == 10**15 - 2 * 86400 * 10**9
    assert parse_since("2024-01-01T00:00:00+00:00") == 1704067200 * 10**9
    with pytest.raises(SyswardError):
        parse_since("soon")
