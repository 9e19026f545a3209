"""Privilege and isolation events from real children: setuid, unshare, ptrace."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import time
from collections.abc import Iterator

import pytest
from sensor_helpers import Collector, in_child, libc_call, start

CLONE_NEWUTS = 0x04000000
PTRACE_ATTACH, PTRACE_DETACH = 16, 17


@pytest.fixture(scope="module")
def col() -> Iterator[Collector]:
    yield from start("setuid,setgid,unshare,ptrace,signal")


def test_setuid_as_unprivileged_child_is_refused(col: Collector) -> None:
    def child() -> int:
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        try:
            os.setuid(0)
        except PermissionError:
            return 0
        return 1

    pid = in_child(child)
    drop = col.of_pid(pid, "setresuid")
    assert drop.args == {"ruid": 65534, "euid": 65534, "suid": 65534} and drop.res == 0
    ev = col.of_pid(pid, "setuid")
    assert ev.args == {"uid": 0}
    assert ev.res == -errno.EPERM
    assert (ev.uid, ev.euid) == (65534, 65534)


def test_arguments_keep_their_order(col: Collector) -> None:
    """The exit programs read the arguments from the saved user registers (di, si, dx):
    distinct values show that each lands in its own slot."""
    def child() -> None:
        os.setgroups([])
        os.setresgid(1001, 1002, 1003)
        os.setresuid(2001, 2002, 2003)

    pid = in_child(child)
    ev = col.of_pid(pid, "setresgid")
    assert ev.args == {"rgid": 1001, "egid": 1002, "sgid": 1003} and ev.res == 0
    ev = col.of_pid(pid, "setresuid")
    assert ev.args == {"ruid": 2001, "euid": 2002, "suid": 2003} and ev.res == 0
    assert (ev.uid, ev.euid) == (2001, 2002)  # the header is read after the call


def test_unshare(col: Collector) -> None:
    pid = in_child(lambda: 0 if libc_call("unshare", CLONE_NEWUTS) == 0 else 1)
    ev = col.of_pid(pid, "unshare")
    assert ev.args == {"flags": CLONE_NEWUTS} and ev.res == 0


def test_ptrace_attach(col: Collector) -> None:
    target = os.fork()
    if target == 0:
        time.sleep(30)
        os._exit(0)
    try:
        def child() -> int:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                    ctypes.c_void_p]
            if libc.ptrace(PTRACE_ATTACH, target, None, None) != 0:
                return 1
            os.waitpid(target, 0)
            libc.ptrace(PTRACE_DETACH, target, None, None)
            return 0

        pid = in_child(child)
        ev = col.find(lambda e: e.pid == pid and e.type == "ptrace"
                      and e.args["request"] == PTRACE_ATTACH)
        assert ev.args["pid"] == target and ev.res == 0
    finally:
        os.kill(target, signal.SIGKILL)
        os.waitpid(target, 0)


def test_kill(col: Collector) -> None:
    target = os.fork()
    if target == 0:
        time.sleep(30)
        os._exit(0)
    pid = in_child(lambda: os.kill(target, signal.SIGTERM))
    os.waitpid(target, 0)
    ev = col.of_pid(pid, "kill")
    assert ev.args == {"pid": target, "sig": signal.SIGTERM} and ev.res == 0
