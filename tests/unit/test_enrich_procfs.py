"""Seeding and live misses against REAL processes started by the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sysward.enrich import Enricher, ProcReader
from sysward.enrich.procfs import exe_link_flags
from sysward.events.model import EXE_DELETED, EXE_FROM_MEMFD, Event

SLEEPER = "import sys, time; print('ready', flush=True); time.sleep(float(sys.argv[1]))"


def _wait_ready(child: subprocess.Popen[bytes]) -> None:
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"ready"


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(
        [sys.executable, "-c", SLEEPER, "30", "--marker", "sysward test"],
        cwd=tmp_path, stdout=subprocess.PIPE,
    )
    _wait_ready(child)
    yield child
    child.kill()
    child.wait()


def test_seed_sees_real_child(sleeper: subprocess.Popen[bytes], tmp_path: Path) -> None:
    before = time.time_ns()
    enr = Enricher()
    assert enr.stats()["sysward_enrich_seeded_total"] >= 3
    p = enr.lookup(sleeper.pid)
    assert p is not None
    assert p.argv == [sys.executable, "-c", SLEEPER, "30", "--marker", "sysward test"]
    assert p.cwd == str(tmp_path)
    assert p.exepath == os.path.realpath(sys.executable)
    assert p.ppid == os.getpid()
    assert p.parent is not None and p.parent.pid == os.getpid()
    assert p.parent is enr.lookup(os.getpid())
    assert (p.uid, p.euid, p.gid) == (os.getuid(), os.geteuid(), os.getgid())
    assert p.user == __import__("pwd").getpwuid(os.getuid()).pw_name
    # started a moment ago: within a few seconds of now (ticks are 10 ms)
    assert before - 10 * 10**9 < p.start_time <= time.time_ns() + 20_000_000
    assert p.sid == os.getsid(sleeper.pid) and p.pgid == os.getpgid(sleeper.pid)
    assert p.pidns > 0 and p.mntns > 0
    assert p.container_id == "host"
    status = Path(f"/proc/{sleeper.pid}/status").read_text()
    cap_eff = next(line for line in status.splitlines() if line.startswith("CapEff"))
    assert p.cap_effective == int(cap_eff.split()[1], 16)
    # the whole ancestry up to pid 1 is linked
    chain = []
    q = p
    while q.parent is not None:
        q = q.parent
        chain.append(q.pid)
    assert chain[0] == os.getpid() and chain[-1] == 1


def test_live_miss_reads_proc(tmp_path: Path) -> None:
    enr = Enricher()
    child = subprocess.Popen([sys.executable, "-c", SLEEPER, "30", "late"],
                             cwd=tmp_path, stdout=subprocess.PIPE)
    try:
        _wait_ready(child)
        assert enr.lookup(child.pid) is None  # started after seeding
        e = Event(ts=time.time_ns(), type="openat", pid=child.pid, tid=child.pid,
                  ppid=os.getpid(), comm="python3", args={"name": "/etc/passwd"})
        enr.process(e)
        assert e.proc is not None and e.proc.argv[-2:] == ["30", "late"]
        assert e.proc.cwd == str(tmp_path) and e.proc.parent is enr.lookup(os.getpid())
        st = enr.stats()
        assert st["sysward_enrich_misses_total"] == 1
        assert st["sysward_enrich_miss_proc_reads_total"] == 1
        # a start time far from the one in /proc means the pid was reused: header only
        enr2 = Enricher(seed_from_proc=False)
        enr2.live = True
        e2 = Event(ts=time.time_ns(), type="openat", pid=child.pid, tid=child.pid,
                   comm="other", start_time=e.proc.start_time - 3600 * 10**9)
        enr2.process(e2)
        assert e2.proc is not None and e2.proc.argv == [] and e2.proc.comm == "other"
    finally:
        child.kill()
        child.wait()


def test_exited_process_is_a_header_only_miss() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    enr = Enricher()
    e = Event(ts=time.time_ns(), type="procexit", pid=child.pid, tid=child.pid, comm="true")
    enr.process(e)
    assert e.proc is not None and e.proc.comm == "true" and e.proc.exit_time == e.ts
    assert enr.stats()["sysward_enrich_miss_proc_reads_total"] == 0


def test_deleted_exe_flag(tmp_path: Path) -> None:
    exe = tmp_path / "sleepy"
    shutil.copy("/bin/sleep", exe)
    child = subprocess.Popen([str(exe), "30"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{child.pid}/exe") != str(exe):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        exe.unlink()
        p = ProcReader().read(child.pid)
        assert p is not None and p.exepath == str(exe) and p.exe_flags == EXE_DELETED
    finally:
        child.kill()
        child.wait()


def test_memfd_exe_flag() -> None:
    code = (
        "import os, sys\n"
        "fd = os.memfd_create('payload', 0)\n"
        "os.write(fd, open('/bin/sleep', 'rb').read())\n"
        "os.execv(f'/proc/self/fd/{fd}', ['payload', '30'])\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 5
        while "memfd" not in os.readlink(f"/proc/{child.pid}/exe"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        p = ProcReader().read(child.pid)
        assert p is not None and p.exepath.startswith("/memfd:payload")
        assert p.exe_flags & EXE_FROM_MEMFD and p.argv == ["payload", "30"]
    finally:
        child.kill()
        child.wait()


def test_exe_link_text() -> None:
    assert exe_link_flags("/usr/bin/ls") == ("/usr/bin/ls", 0)
    assert exe_link_flags("/tmp/x (deleted)") == ("/tmp/x", EXE_DELETED)
    assert exe_link_flags("/memfd:x (deleted)") == ("/memfd:x", EXE_FROM_MEMFD | EXE_DELETED)


def test_comm_with_parenthesis(tmp_path: Path) -> None:
    code = ("import ctypes, time\n"
            "ctypes.CDLL(None).prctl(15, b'a) b (c', 0, 0, 0)\n"
            "print('ready', flush=True); time.sleep(30)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        _wait_ready(child)
        p = ProcReader().read(child.pid)
        assert p is not None and p.comm == "a) b (c" and p.ppid == os.getpid()
    finally:
        child.kill()
        child.wait()


def test_no_proc_reads_when_replaying(tmp_path: Path) -> None:
    enr = Enricher(seed_from_proc=False)
    assert len(enr.table) == 0
    e = Event(ts=1, type="openat", pid=os.getpid(), comm="x")
    enr.process(e)
    assert e.proc is not None and e.proc.argv == [] and e.proc.comm == "x"
