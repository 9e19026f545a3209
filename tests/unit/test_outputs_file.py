"""The JSON-lines file output: one object per line, rotation at the size bound."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from sysward.alert import Alert, Priority
from sysward.errors import SyswardError
from sysward.outputs import FileOutput


def make_alert(i: int) -> Alert:
    return Alert(time=1_700_000_000_000_000_000 + i, rule="Write below etc",
                 priority=Priority.ERROR, output=f"file below /etc opened for writing n={i}",
                 output_fields={"n": i, "fd.name": "/etc/x"}, tags=["T1543"], hostname="h")


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_writes_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "log" / "alerts.jsonl"
    out = FileOutput(path)
    for i in range(3):
        out.emit(make_alert(i))
    out.close(1.0)
    rows = read_lines(path)
    assert [r["output_fields"]["n"] for r in rows] == [0, 1, 2]
    assert rows[0]["priority"] == "Error" and rows[0]["rule"] == "Write below etc"
    assert out.stats()["sent"] == 3


def test_rotates_at_size_bound_and_keeps_n_backups(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    line_len = len(make_alert(10).to_json()) + 1  # every i below has two digits
    max_bytes = line_len * 10 + 5  # room for 10 lines per file
    out = FileOutput(path, max_bytes=max_bytes, backups=3)
    for i in range(10, 65):
        out.emit(make_alert(i))
    out.close(1.0)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2", "alerts.jsonl.3"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= max_bytes
    def n(p: Path) -> list[Any]:
        return [r["output_fields"]["n"] for r in read_lines(p)]
    assert n(path) == list(range(60, 65))
    assert n(tmp_path / "alerts.jsonl.1") == list(range(50, 60))
    assert n(tmp_path / "alerts.jsonl.3") == list(range(30, 40))  # older ones rotated away
    assert out.rotations == 5


def test_zero_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    line_len = len(make_alert(0).to_json()) + 1
    out = FileOutput(path, max_bytes=line_len * 4, backups=0)
    for i in range(10):
        out.emit(make_alert(i))
    out.close(1.0)
    assert sorted(os.listdir(tmp_path)) == ["alerts.jsonl"]
    assert [r["output_fields"]["n"] for r in read_lines(path)] == [8, 9]


def test_appends_to_existing_file_and_counts_its_size(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    line_len = len(make_alert(0).to_json()) + 1
    path.write_bytes(b"x" * (line_len * 3))
    out = FileOutput(path, max_bytes=line_len * 4, backups=1)
    out.emit(make_alert(1))
    out.emit(make_alert(2))
    out.close(1.0)
    assert (tmp_path / "alerts.jsonl.1").read_bytes().startswith(b"xxx")
    assert [r["output_fields"]["n"] for r in read_lines(path)] == [2]


def test_unwritable_path_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SyswardError, match=r"^cannot open the alert file .*; choose"):
        FileOutput(blocker / "alerts.jsonl")
