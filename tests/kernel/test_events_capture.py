"""`sysward events --output`: a private file that starts with the process snapshot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson


def sysward(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sysward", *args], capture_output=True,
                          text=True, timeout=60)


def test_events_output_is_created_0600(tmp_path: Path) -> None:
    out = tmp_path / "cap.jsonl"
    proc = sysward("events", "--events", "exec", "--duration", "0.3", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    snap = [x["proc"] for x in lines if x.get("snapshot") == "proc"]
    assert lines[0].get("snapshot") == "proc"  # the snapshot comes first
    by_pid = {p["pid"]: p for p in snap}
    me = by_pid[os.getpid()]  # this test process started before the capture
    assert me["ppid"] == os.getppid() and me["ppid"] in by_pid and me["argv"]
    assert "parent" not in me
