from __future__ import annotations

import subprocess
import sys

from sysward.cli import _COMMANDS, main
from sysward.events.model import Event, Process, process_to_dict


def test_help_lists_every_command(capsys: object) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sysward", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in _COMMANDS:
        assert name in out


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sysward", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no-such-command" in proc.stderr


def test_event_json_round_trip() -> None:
    ev = Event(ts=1, type="openat", pid=10, comm="cat", res=3, args={"name": "/etc/shadow"})
    back = Event.from_json(ev.to_json())
    assert back == ev


def test_event_proc_context_is_read_with_parents() -> None:
    parent = Process(pid=1, comm="nginx", argv=["nginx"])
    child = Process(pid=2, ppid=1, comm="sh", argv=["sh", "-c", "id"], parent=parent)
    data = Event(ts=1, type="execve", pid=2).to_dict()
    data["proc"] = process_to_dict(child)
    ev = Event.from_dict(data)
    assert ev.proc is not None and ev.proc.parent is not None
    assert ev.proc.parent.comm == "nginx"
    assert ev.proc.exe == "sh"
    assert main(["--version"]) == 0
