"""Falco's fs.path.*, evt.abspath*, evt.count*, syscall.type and proc.pgid: values per event."""

from __future__ import annotations

from typing import Any

import pytest

from sysward.events.model import Event, Process
from sysward.rules.fields import resolve


def val(name: str, ev: Event) -> Any:
    return resolve(name, None).extract(ev)


def ev(etype: str, args: dict[str, Any], res: int = 0) -> Event:
    return Event(ts=1, type=etype, pid=3, res=res, args=args)


@pytest.mark.parametrize(("etype", "args", "name"), [
    ("unlink", {"name": "/tmp/a"}, "/tmp/a"),
    ("unlinkat", {"name": "/tmp/a", "dirfd": -100}, "/tmp/a"),
    ("mkdir", {"path": "/srv/d", "mode": 0o755}, "/srv/d"),
    ("chmod", {"filename": "/etc/shadow", "mode": 0o777}, "/etc/shadow"),
    ("openat", {"name": "/etc/passwd", "nameraw": "../passwd", "flags": 0}, "/etc/passwd"),
])
def test_one_path_events(etype: str, args: dict[str, Any], name: str) -> None:
    e = ev(etype, args)
    assert val("fs.path.name", e) == name
    assert val("fs.path.source", e) is None and val("fs.path.target", e) is None


def test_nameraw_is_what_the_process_passed() -> None:
    e = ev("openat", {"name": "/etc/passwd", "nameraw": "../passwd", "flags": 0})
    assert val("fs.path.nameraw", e) == "../passwd"
    assert val("fs.path.nameraw", ev("unlink", {"name": "/tmp/a"})) == "/tmp/a"


@pytest.mark.parametrize(("etype", "args", "src", "dst"), [
    ("rename", {"oldpath": "/a", "newpath": "/b"}, "/a", "/b"),
    ("renameat2", {"oldpath": "/a", "newpath": "/b", "flags": 0}, "/a", "/b"),
    ("link", {"oldpath": "/etc/shadow", "newpath": "/tmp/s"}, "/etc/shadow", "/tmp/s"),
    ("symlinkat", {"target": "/etc/shadow", "linkpath": "/tmp/l"}, "/etc/shadow", "/tmp/l"),
])
def test_two_path_events(etype: str, args: dict[str, Any], src: str, dst: str) -> None:
    e = ev(etype, args)
    assert (val("fs.path.source", e), val("fs.path.target", e)) == (src, dst)
    assert (val("fs.path.sourceraw", e), val("fs.path.targetraw", e)) == (src, dst)
    assert val("fs.path.name", e) is None


def test_abspath_only_for_dirfd_relative_syscalls() -> None:
    assert val("evt.abspath", ev("unlinkat", {"name": "/tmp/a", "dirfd": 3})) == "/tmp/a"
    assert val("evt.abspath", ev("unlink", {"name": "/tmp/a"})) is None
    assert val("evt.abspath", ev("creat", {"name": "/tmp/a", "flags": 0})) is None
    r = ev("renameat", {"oldpath": "/a", "newpath": "/b", "flags": 0})
    assert (val("evt.abspath.src", r), val("evt.abspath.dst", r)) == ("/a", "/b")
    s = ev("symlinkat", {"target": "../x", "linkpath": "/tmp/l"})
    assert val("evt.abspath.src", s) is None and val("evt.abspath.dst", s) == "/tmp/l"
    assert val("evt.abspath.dst", ev("rename", {"oldpath": "/a", "newpath": "/b"})) is None


def test_counts() -> None:
    ok = ev("openat", {"name": "/x", "flags": 0}, res=3)
    bad_file = ev("openat", {"name": "/x", "flags": 0}, res=-2)
    bad_net = ev("connect", {"fd": 3, "family": 2, "addr": "1.2.3.4", "port": 80}, res=-111)
    bad_other = ev("setuid", {"uid": 0}, res=-1)
    assert val("evt.count", ok) == 1 and val("evt.count.exit", ok) == 1
    assert val("evt.count.error", ok) is None and val("evt.count.error", bad_file) == 1
    assert val("evt.count.error.file", bad_file) == 1
    assert val("evt.count.error.net", bad_file) is None
    assert val("evt.count.error.net", bad_net) == 1 and val("evt.count.error.file", bad_net) is None
    assert val("evt.count.error.other", bad_other) == 1
    assert val("evt.count.error.other", bad_file) is None


def test_syscall_type() -> None:
    assert val("syscall.type", ev("openat", {"name": "/x"})) == "openat"
    assert val("syscall.type", ev("procexit", {"status": 0})) is None


def test_process_group() -> None:
    leader = ev("execve", {})
    leader.proc = Process(pid=3, pgid=3)
    member = ev("execve", {})
    member.proc = Process(pid=4, pgid=3)
    assert val("proc.pgid", leader) == 3 and val("proc.is_pgid_leader", leader) is True
    assert val("proc.pgid", member) == 3 and val("proc.is_pgid_leader", member) is False
    assert val("proc.pgid", ev("execve", {})) is None
