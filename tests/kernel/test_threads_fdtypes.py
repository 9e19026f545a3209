"""proc.nthreads / proc.nchilds and fd.types on real processes: real threads, real descriptors.

The thread counts come from the kernel with each record; fd.types from /proc when a rule asks.
Both are checked the way a rule sees them: events from the sensor, enriched live, matched by
compiled rules.  Everything here is Python and ctypes, so the kernel matrix guests run it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sensor_helpers import LIBC, Collector, start
from wait_scale import WAIT_SCALE

from sysward.enrich.enricher import Enricher
from sysward.events.model import Event
from sysward.rules import CompiledRule, load_rules_text

SYS_EXIT = {"x86_64": 60, "aarch64": 93}.get(platform.machine())


@pytest.fixture(scope="module")
def col() -> Iterator[Collector]:
    yield from start("open")


def _rule(cond: str, output: str = "o") -> CompiledRule:
    res = load_rules_text(f"- rule: R\n  desc: d\n  output: '{output}'\n  priority: warning\n"
                          f"  condition: {cond}\n", "t.yaml")
    assert res.ok, [str(d) for d in res.errors]
    return res.ruleset.rules[0]


def _opened(col: Collector, pid: int, path: Path) -> Event:
    return col.find(lambda e: e.pid == pid and e.type == "openat"
                    and e.args.get("name") == str(path.resolve()), timeout=5.0)


def _wait_child(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"


def _touch(path: Path) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _tasks() -> int:
    return len(os.listdir("/proc/self/task"))


def test_thread_counts_of_real_threads(col: Collector, tmp_path: Path) -> None:
    """Four live threads, then the main thread alone, as each thread's own events say."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            both = threading.Barrier(4)
            done = threading.Barrier(4)

            def worker(i: int) -> None:
                both.wait()
                _touch(tmp_path / f"worker-{i}")
                done.wait()

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
            for t in threads:
                t.start()
            both.wait()  # all four alive from here to `done`
            _touch(tmp_path / "main-4")
            done.wait()
            for t in threads:
                t.join()
            deadline = time.monotonic() + 5 * WAIT_SCALE
            while _tasks() > 1 and time.monotonic() < deadline:
                time.sleep(0.001)  # join() returns before the kernel thread is gone
            _touch(tmp_path / "main-1")
            code = 0
        finally:
            os._exit(code)
    _wait_child(pid)
    four = _rule("evt.type = openat and proc.nthreads = 4 and proc.nchilds = 3")
    events = [_opened(col, pid, tmp_path / "main-4")]
    events += [_opened(col, pid, tmp_path / f"worker-{i}") for i in range(3)]
    assert len({e.tid for e in events}) == 4 and events[0].tid == pid
    for ev in events:
        assert (ev.nthreads, ev.nchilds) == (4, 3), (ev.tid, ev.nthreads, ev.nchilds)
        assert four.matches(ev)
    solo = _opened(col, pid, tmp_path / "main-1")
    assert (solo.nthreads, solo.nchilds) == (1, 0)
    assert _rule("evt.type = openat and proc.nthreads = 1 and proc.nchilds = 0").matches(solo)
    assert not four.matches(solo)


@pytest.mark.skipif(SYS_EXIT is None, reason=f"no SYS_exit number for {platform.machine()}")
def test_the_main_thread_exits_first(col: Collector, tmp_path: Path) -> None:
    """Falco's case: the leader leaves; its thread still counts as a child, the total drops."""
    pid = os.fork()
    if pid == 0:
        me = os.getpid()

        def survivor() -> None:
            code = 1
            try:
                deadline = time.monotonic() + 5 * WAIT_SCALE
                stat = f"/proc/{me}/task/{me}/stat"
                while time.monotonic() < deadline:  # until the leader is a zombie
                    with open(stat) as f:
                        if f.read().rpartition(")")[2].split()[0] == "Z":
                            break
                    time.sleep(0.001)
                _touch(tmp_path / "survivor")
                code = 0
            finally:
                os._exit(code)  # exit_group: the whole process ends here

        threading.Thread(target=survivor).start()
        LIBC.syscall(SYS_EXIT, 0)  # only the main thread exits (ctypes lets go of the GIL)
        os._exit(2)  # not reached
    _wait_child(pid)
    ev = _opened(col, pid, tmp_path / "survivor")
    assert ev.tid != pid
    assert (ev.nthreads, ev.nchilds) == (1, 1)
    assert _rule("evt.type = openat and proc.nthreads = 1 and proc.nchilds = 1").matches(ev)


def _ctypes_fd(name: str, *args: object) -> int:
    fd = int(getattr(LIBC, name)(*args))
    assert fd >= 0, f"{name} failed: errno {ctypes.get_errno()}"
    return fd


def test_fd_types_of_a_live_process(col: Collector, tmp_path: Path) -> None:
    """A child with one descriptor of each kind; its open is enriched live and matched."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            ready, go = 1000, 1001  # out of the way of what is closed below
            os.dup2(ready_w, ready)
            os.dup2(go_r, go)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(max(3, null + 1), ready)
            os.closerange(go + 1, 65536)
            if null > 3:
                os.closerange(3, null)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held: list[object] = [
                tcp, socket.socket(socket.AF_INET6, socket.SOCK_DGRAM),
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
                socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0), select.epoll(),
                os.eventfd(0), os.memfd_create("sw-test"), os.open(tmp_path, os.O_RDONLY),
                _ctypes_fd("inotify_init1", 0), _ctypes_fd("timerfd_create", 1, 0),
            ]
            mask = (ctypes.c_ulong * 16)()
            mask[0] = 1 << (signal.SIGUSR1 - 1)
            held.append(_ctypes_fd("signalfd", -1, ctypes.byref(mask), 0))
            _touch(tmp_path / "all-kinds")
            for fd in (0, 1, 2):
                os.dup2(tcp.fileno(), fd)  # as a reverse shell does
            _touch(tmp_path / "redirected")
            os.write(ready, b"x")
            os.read(go, 1)  # stay alive (descriptors open) until the parent has looked
            code = 0 if held else 1
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    try:
        assert os.read(ready_r, 1) == b"x"
        enricher = Enricher()
        every = _opened(col, pid, tmp_path / "all-kinds")
        redirected = _opened(col, pid, tmp_path / "redirected")
        enricher.process(every)
        enricher.process(redirected)
        kinds = {"file", "pipe", "ipv4", "ipv6", "unix", "netlink", "eventpoll", "event",
                 "memfd", "directory", "inotify", "timerfd", "signalfd"}
        shown = _rule("evt.type = openat", "%fd.types").render(redirected)[0]
        assert shown.startswith("(") and set(shown[1:-1].split(",")) == kinds, shown
        listed = ", ".join(sorted(kinds))
        assert _rule(f"evt.type = openat and fd.types in ({listed})").matches(redirected)
        assert not _rule("evt.type = openat and fd.types in (file, pipe)").matches(redirected)
        assert _rule("evt.type = openat and fd.types intersects (netlink)").matches(redirected)
        assert not _rule("evt.type = openat and fd.types intersects (bpf)").matches(redirected)
        # Falco's "all three standard streams on a network socket" test, on the real table;
        # read when evaluated, so the first event sees the redirection too (rules guide)
        streams = _rule("evt.type = openat and fd.types[0] in (ipv4, ipv6) and "
                        "fd.types[1] in (ipv4, ipv6) and fd.types[2] in (ipv4, ipv6)")
        assert streams.matches(redirected) and streams.matches(every)
    finally:
        os.write(go_w, b"x")
        os.close(go_w)
        os.close(ready_r)
        _wait_child(pid)
    # the process is gone: nothing to read, the field is missing (``every`` has not had its
    # whole table read yet; a value read once is kept for the rest of that event's rules)
    assert not _rule("evt.type = openat and fd.types exists").matches(every)
