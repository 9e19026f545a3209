"""Process events from real children: exec (success and failure), fork, exit."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sensor_helpers import Collector, in_child, start


@pytest.fixture(scope="module")
def col() -> Iterator[Collector]:
    yield from start("exec,fork,exit")


def test_exec_reports_path_argv_cwd_once(col: Collector, tmp_path: Path) -> None:
    proc = subprocess.Popen(["/bin/echo", "hello", "sysward world"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL)
    proc.wait()
    ev = col.of_pid(proc.pid, "execve")
    assert ev.res == 0
    assert ev.args["filename"] == os.path.realpath("/bin/echo")
    assert ev.args["argv"] == ["/bin/echo", "hello", "sysward world"]
    assert ev.args["argv_truncated"] is False
    assert ev.args["cwd"] == str(tmp_path.resolve())
    assert ev.comm == "echo" and ev.ppid == os.getpid()
    assert ev.uid == os.getuid() and ev.start_time > 0
    assert any(e.startswith("PATH=") for e in ev.args["env"])
    # reported once, at exit: no second execve record for this pid
    col.of_pid(proc.pid, "procexit")
    assert sum(1 for e in col.events if e.pid == proc.pid and e.type == "execve") == 1


def test_failed_exec_reports_requested_name_and_argv(col: Collector, tmp_path: Path) -> None:
    def child() -> int:
        os.chdir(tmp_path)
        try:
            os.execv("./no-such-program", ["./no-such-program", "-x", "arg"])
        except OSError:
            return 3
        return 4

    pid = in_child(child)
    ev = col.of_pid(pid, "execve")
    assert ev.res == -errno.ENOENT
    assert ev.args["filename"] == str(tmp_path.resolve() / "no-such-program")
    assert ev.args["argv"] == ["./no-such-program", "-x", "arg"]
    assert "env" not in ev.args


def test_fork_and_exit_code(col: Collector) -> None:
    grandchild: list[int] = []

    def child() -> int:
        gpid = os.fork()
        if gpid == 0:
            os._exit(7)
        os.waitpid(gpid, 0)
        os.write(wfd, str(gpid).encode())
        return 0

    rfd, wfd = os.pipe()
    pid = in_child(child)
    os.close(wfd)
    grandchild.append(int(os.read(rfd, 32)))
    os.close(rfd)
    gpid = grandchild[0]
    ev = col.find(lambda e: e.pid == pid and e.type in ("clone", "clone3", "fork")
                  and e.res == gpid)
    assert ev.res == gpid
    ex = col.of_pid(gpid, "procexit")
    # the fork's return in the new process (result 0) passes the same exit tracepoint; it is
    # not an event
    assert not any(e.pid == gpid and e.type in ("clone", "clone3", "fork", "vfork")
                   for e in col.events)
    assert ex.args == {"status": 7, "signal": 0, "core": False}
    ex = col.of_pid(pid, "procexit")
    assert ex.args["status"] == 0


def test_exit_by_signal(col: Collector) -> None:
    proc = subprocess.Popen(["/bin/sleep", "30"])
    proc.kill()
    proc.wait()
    ev = col.of_pid(proc.pid, "procexit")
    assert ev.args["signal"] == 9 and ev.args["status"] == 0
