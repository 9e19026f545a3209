"""Exec-time facts read by the kernel, from real processes: the types, inodes and devices of
fds 0..2 (pipes, sockets, devices, closed), the addresses of a socket on them, whether the
executable was opened for writing since the sensors were loaded (and by whom), whether its
user may write it; and, with the real enrichment, which exec'd process writes a pipe, in
both orders of a pipeline's two execs.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sensor_helpers import Collector, start

from sysward.enrich import Enricher
from sysward.events.model import Event
from sysward.events.types import ExeFlag
from sysward.rules.fields import resolve

WRITTEN = int(ExeFlag.EXE_WRITTEN)
WRITABLE = int(ExeFlag.EXE_WRITABLE)
NOBODY = 65534


@pytest.fixture(scope="module")
def col() -> Iterator[Collector]:
    yield from start("exec,open,fork,exit")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory below /tmp that every user may enter (pytest's tmp_path is root's only)."""
    d = Path(f"/tmp/sw-stdio-{os.getpid()}-{time.monotonic_ns()}")
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _exec_of(col: Collector, pid: int) -> Event:
    return col.find(lambda e: e.pid == pid and e.type == "execve" and e.res == 0)


def test_pipe_socket_and_device_on_fds_0_1_2(col: Collector) -> None:
    rd, wr = os.pipe()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    cli = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    try:
        proc = subprocess.Popen(["/bin/true"], stdin=rd, stdout=cli.fileno(),
                                stderr=subprocess.DEVNULL)
        proc.wait()
        ev = _exec_of(col, proc.pid)
        fd0, fd1, fd2 = ev.args["stdio"]
        assert fd0 == {"typechar": "p", "ino": os.fstat(rd).st_ino}
        assert fd1["typechar"] == "4" and fd1["ino"] == os.fstat(cli.fileno()).st_ino
        lport = cli.getsockname()[1]
        assert (fd1["addr"], fd1["port"]) == ("127.0.0.1", srv.getsockname()[1])
        assert (fd1["saddr"], fd1["sport"]) == ("127.0.0.1", lport)
        assert fd2["typechar"] == "c" and fd2["rdev"] == os.stat("/dev/null").st_rdev
        assert resolve("proc.stdin.type").extract(ev) == "pipe"
        assert resolve("proc.stdout.type").extract(ev) == "ipv4"
        assert resolve("proc.stderr.type").extract(ev) == "file"
        assert resolve("proc.stdin.name").extract(ev) == f"pipe:[{fd0['ino']}]"
        assert resolve("proc.stderr.name").extract(ev) == "/dev/null"
        # the server's port is the lower one here only by chance: either way both ends show
        name = resolve("proc.stdout.name").extract(ev)
        assert f"127.0.0.1:{lport}" in name and f"127.0.0.1:{srv.getsockname()[1]}" in name
    finally:
        for s in (conn, cli, srv):
            s.close()
        os.close(rd)
        os.close(wr)


def test_closed_fds_and_unix_sockets(col: Collector) -> None:
    a, b = socket.socketpair()
    try:
        # fd 0 closed in the child (close_fds does not touch 0..2; the shell closes it)
        proc = subprocess.Popen(["/bin/sh", "-c", "exec 0<&- /bin/true"], stdout=a.fileno(),
                                stderr=a.fileno())
        proc.wait()
        ev = col.find(lambda e: e.pid == proc.pid and e.type == "execve" and e.res == 0
                      and e.args["filename"].endswith("/true"))
        fd0, fd1, fd2 = ev.args["stdio"]
        assert fd0 is None
        assert fd1 == fd2 == {"typechar": "u", "ino": os.fstat(a.fileno()).st_ino, "family": 1}
        assert resolve("proc.stdin.type").extract(ev) is None
        assert resolve("proc.stdout.type").extract(ev) == "unix"
    finally:
        a.close()
        b.close()


def test_exe_written_since_start_and_by_whom(col: Collector, shared_dir: Path) -> None:
    # written by cp (a child: the sensor filters this process's own syscalls, as it does
    # the agent's)
    dropped = shared_dir / "dropped"
    subprocess.run(["cp", "/bin/true", str(dropped)], check=True)
    moved = shared_dir / "moved"
    staged = shared_dir / ".staged"
    subprocess.run(["cp", "/bin/true", str(staged)], check=True)
    os.rename(staged, moved)  # the inode is what counts, not the name
    writer = "cp"
    for exe in (dropped, moved):
        subprocess.run([str(exe)], check=True)
    def exec_of(path: Path) -> Event:
        return col.find(lambda e: e.type == "execve" and e.res == 0
                        and e.args["filename"] == str(path))

    evs = [exec_of(dropped), exec_of(moved)]
    for ev in evs:
        assert ev.args["exe_flags"] & WRITTEN
        assert ev.args["exe_writer"] == writer
        assert resolve("proc.exe_written").extract(ev) is True
        assert resolve("proc.exe_writer").extract(ev) == writer
    # a program nobody wrote since the sensors were loaded
    proc2 = subprocess.Popen(["/bin/true"])
    proc2.wait()
    ev = _exec_of(col, proc2.pid)
    assert not ev.args["exe_flags"] & WRITTEN and "exe_writer" not in ev.args
    assert resolve("proc.exe_written").extract(ev) is False


def test_exe_writable_by_its_user(col: Collector, shared_dir: Path) -> None:
    exe = shared_dir / "prog"
    shutil.copy("/bin/true", exe)
    cases = ((0o755, 0, True), (0o755, NOBODY, False), (0o757, NOBODY, True))
    for mode, uid, writable in cases:
        exe.chmod(mode)

        def drop(u: int = uid) -> None:
            if u:
                os.setgid(u)
                os.setuid(u)

        proc = subprocess.Popen([str(exe)], preexec_fn=drop)
        assert proc.wait() == 0
        ev = _exec_of(col, proc.pid)
        assert ev.uid == uid
        assert bool(ev.args["exe_flags"] & WRITABLE) is writable, (oct(mode), uid)
        assert resolve("proc.is_exe_writable").extract(ev) is writable
    # root may write anything on a writable file system, whatever the mode
    exe.chmod(stat.S_IRUSR | stat.S_IXUSR)
    proc = subprocess.Popen([str(exe)])
    proc.wait()
    assert _exec_of(col, proc.pid).args["exe_flags"] & WRITABLE


def _wait_exec(pid: int, exe: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/exe") == exe:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} did not exec {exe}")


@pytest.mark.parametrize("reader_first", [True, False])
def test_pipe_writer_known_in_either_order(col: Collector, reader_first: bool) -> None:
    """`base64 -d | sh`: whichever side execs second learns the other: the shell's
    proc.stdin.writer.* when the decoder exec'd first, the decoder's proc.stdout.reader.*
    when the shell did."""
    enricher = Enricher(seed_from_proc=True)
    sh, b64 = os.path.realpath("/bin/sh"), os.path.realpath(shutil.which("base64") or "")
    rd, wr = os.pipe()
    # the reader waits for its input; the writer waits until released, so the order of
    # their two execs is fixed by the test
    reader = subprocess.Popen(["/bin/sh", "-c", "read line; exit 0"],
                              stdin=rd) if reader_first else None
    if reader is not None:
        _wait_exec(reader.pid, sh)
    # the writer's gate is its stdin: `read` takes one line (shells read a pipe byte by byte)
    # and leaves the rest to base64
    writer = subprocess.Popen(["/bin/sh", "-c", f"read go; exec {b64} -d"], stdin=subprocess.PIPE,
                              stdout=wr)
    assert writer.stdin is not None
    _wait_exec(writer.pid, sh)
    if reader is None:
        writer.stdin.write(b"go\n")
        writer.stdin.flush()
        _wait_exec(writer.pid, b64)
        reader = subprocess.Popen(["/bin/sh", "-c", "read line; exit 0"], stdin=rd)
        _wait_exec(reader.pid, sh)
    else:
        writer.stdin.write(b"go\n")
        writer.stdin.flush()
        _wait_exec(writer.pid, b64)
    writer.stdin.write(b"dHJ1ZQo=\n")  # "true\n"
    writer.stdin.close()
    for p in (writer, reader):
        p.wait(timeout=10)
    for fd in (rd, wr):
        os.close(fd)
    b64_exec = col.find(lambda e: e.pid == writer.pid and e.type == "execve" and e.res == 0
                        and e.args["filename"] == b64)
    sh_exec = col.find(lambda e: e.pid == reader.pid and e.type == "execve" and e.res == 0)
    # enrichment sees the events in the kernel's order, as the agent does
    first, second = (sh_exec, b64_exec) if reader_first else (b64_exec, sh_exec)
    assert first.ts < second.ts
    for ev in sorted(col.events, key=lambda e: e.ts):
        if ev.ts > second.ts:
            break
        enricher.process(ev)
        if ev is first:
            # the other side has not exec'd yet: nothing is known on either field
            assert resolve("proc.stdin.writer.name").extract(ev) is None
            assert resolve("proc.stdout.reader.name").extract(ev) is None
    if reader_first:
        assert resolve("proc.stdout.reader.name").extract(b64_exec) == "sh"
        assert resolve("proc.stdout.reader.pid").extract(b64_exec) == reader.pid
    else:
        assert resolve("proc.stdin.writer.name").extract(sh_exec) == "base64"
        assert resolve("proc.stdin.writer.exepath").extract(sh_exec) == b64
        assert resolve("proc.stdin.writer.cmdline").extract(sh_exec) == "base64 -d"
