"""fd.types: the types of the descriptors a live process has open, read from /proc.

Golden cases follow falcosecurity/libs' filter tests (FD_FILTER_fd_types and
check_some_fd_fields): each type once, ``fd.types[N]`` a one-item list, ``in`` true when every
type is in the set, ``intersects`` when one is.  The table is a directory laid out as
/proc/<pid>/fd (symbolic links whose text is what the kernel shows), or this machine's own
/proc for real sockets.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from sysward.enrich.enricher import Enricher
from sysward.enrich.fdtypes import ProcFdTypes, classify, socket_type
from sysward.events.model import Event, Process
from sysward.rules import CompiledRule, load_rules_text

PID = 4242


def _rule(cond: str, output: str = "o") -> CompiledRule:
    text = (f"- rule: R\n  desc: d\n  output: '{output}'\n  priority: warning\n"
            f"  condition: {cond}\n")
    res = load_rules_text(text, "t.yaml")
    assert res.ok, [str(d) for d in res.errors]
    return res.ruleset.rules[0]


def matches(cond: str, ev: Event) -> bool:
    return bool(_rule(cond).matches(ev))


def rendered(field: str, ev: Event) -> str:
    rule = _rule("evt.type = openat", f"%{field}")
    assert rule.matches(ev)
    return str(rule.render(ev)[0])


class FakeProc:
    """/proc/<PID>/fd of a made-up process: links named by descriptor number."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd_dir = root / str(PID) / "fd"
        self.fd_dir.mkdir(parents=True)
        self.reader = ProcFdTypes(str(root))
        self.num = 0

    def open(self, fd: int, link: str) -> None:
        (self.fd_dir / str(fd)).symlink_to(link)

    def close(self, fd: int) -> None:
        (self.fd_dir / str(fd)).unlink()

    def event(self) -> Event:
        self.num += 1  # a new event: the per-event cache must not answer for it
        ev = Event(ts=self.num, type="openat", pid=PID, tid=PID, res=3, num=self.num,
                   args={"name": "/tmp/the_file", "flags": 2})
        ev.proc = Process(pid=PID, comm="p", fds=self.reader)
        return ev


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path / "proc")


def test_libs_fd_types_sequence(proc: FakeProc, tmp_path: Path) -> None:
    # an open returns fd 1: a file
    proc.open(1, str(tmp_path / "the_file"))
    ev = proc.event()
    assert rendered("fd.types[1]", ev) == "(file)"
    assert rendered("fd.types", ev) == "(file)"
    # a bpf() call returns fd 2
    proc.open(2, "anon_inode:bpf-map")
    ev = proc.event()
    assert rendered("fd.types[1]", ev) == "(file)"
    assert rendered("fd.types[2]", ev) == "(bpf)"
    assert rendered("fd.types", ev) == "(bpf,file)"
    # and fd 3: the type is listed once
    proc.open(3, "anon_inode:bpf-prog")
    ev = proc.event()
    assert rendered("fd.types[3]", ev) == "(bpf)"
    assert rendered("fd.types", ev) == "(bpf,file)"
    assert matches("fd.types in (bpf, file)", ev)
    assert not matches("fd.types in (bpf)", ev)  # every type must be in the set
    assert matches("fd.types intersects (bpf)", ev)
    assert not matches("fd.types intersects (ipv4, ipv6)", ev)
    assert matches("fd.types[2] in (bpf) and fd.types[1] in (file)", ev)


def test_a_closed_descriptor_is_missing(proc: FakeProc, tmp_path: Path) -> None:
    proc.open(0, str(tmp_path))
    proc.open(5, "pipe:[77]")
    ev = proc.event()
    assert matches("fd.types[5] exists", ev) and matches("fd.types[0] in (directory)", ev)
    proc.close(5)
    ev = proc.event()
    assert not matches("fd.types[5] exists", ev)
    assert not matches("fd.types[5] in (pipe)", ev)
    assert matches("not fd.types[5] in (pipe)", ev)
    assert rendered("fd.types[5]", ev) == "<NA>"
    assert rendered("fd.types", ev) == "(directory)"


def test_the_table_is_read_once_per_event(proc: FakeProc) -> None:
    proc.open(1, "pipe:[1]")
    ev = proc.event()
    rule = _rule("fd.types intersects (pipe) and fd.types in (pipe) and fd.types exists")
    assert rule.matches(ev) and proc.reader.reads == 1
    assert rule.matches(proc.event()) and proc.reader.reads == 2


def test_a_gone_process_or_a_replay_has_no_value(tmp_path: Path) -> None:
    gone = Event(ts=1, type="openat", pid=PID, tid=PID, res=3, num=1)
    gone.proc = Process(pid=PID, fds=ProcFdTypes(str(tmp_path)))  # no /proc/<PID> at all
    replayed = Event(ts=1, type="openat", pid=PID, tid=PID, res=3, num=1)
    replayed.proc = Process(pid=PID)  # a capture: no reader
    for ev in (gone, replayed):
        assert not matches("fd.types exists", ev)
        assert not matches("fd.types intersects (file)", ev)
        assert matches("not fd.types intersects (file)", ev)
        assert not matches("fd.types[0] exists", ev)


def test_a_thread_reads_its_own_table_then_the_process(proc: FakeProc) -> None:
    task = proc.root / "4243" / "fd"
    task.mkdir(parents=True)
    (task / "7").symlink_to("anon_inode:[eventfd]")
    proc.open(1, "pipe:[1]")
    ev = proc.event()
    ev.tid = 4243
    assert rendered("fd.types", ev) == "(event)"
    ev = proc.event()
    ev.tid = 4299  # that thread is gone: the process's table
    assert rendered("fd.types", ev) == "(pipe)"


@pytest.mark.parametrize(("link", "kind"), [
    ("pipe:[12]", "pipe"), ("anon_inode:[eventfd]", "event"),
    ("anon_inode:[signalfd]", "signalfd"), ("anon_inode:[eventpoll]", "eventpoll"),
    ("anon_inode:inotify", "inotify"), ("anon_inode:[timerfd]", "timerfd"),
    ("anon_inode:bpf-map", "bpf"), ("anon_inode:bpf_link", "bpf"),
    ("anon_inode:[userfaultfd]", "userfaultfd"), ("anon_inode:[io_uring]", "io_uring"),
    ("anon_inode:[pidfd]", "pidfd"), ("anon_inode:[perf_event]", "unknown"),
    ("/memfd:payload (deleted)", "memfd"), ("net:[4026531840]", "file"),
    ("/no/such/file (deleted)", "file"),
])
def test_classify_links(link: str, kind: str, tmp_path: Path) -> None:
    assert classify(link, str(tmp_path / "absent")) == kind


@pytest.mark.parametrize(("proto", "kind"), [
    ("TCP", "ipv4"), ("UDP", "ipv4"), ("RAW", "ipv4"), ("PING", "ipv4"), ("TCPv6", "ipv6"),
    ("UDPv6", "ipv6"), ("UDPLITEv6", "ipv6"), ("UNIX", "unix"), ("UNIX-STREAM", "unix"),
    ("NETLINK", "netlink"), ("PACKET", "unknown"),
])
def test_socket_protocol_names(proto: str, kind: str) -> None:
    assert socket_type(proto) == kind


def test_real_descriptors_of_a_child_like_libs_check_some_fd_fields(tmp_path: Path) -> None:
    # a child with a file and an IPv6 UDP socket open (0-2 on /dev/null, a device: a file)
    checks: list[Callable[[Event], bool]] = [
        lambda ev: rendered("fd.types", ev) == "(ipv6,file)",
        lambda ev: matches("fd.types in (file, ipv6)", ev),
        lambda ev: not matches("fd.types intersects (ipv4, unix)", ev),
        lambda ev: rendered("fd.types[4]", ev) == "(ipv6)",
        lambda ev: rendered("fd.types[3]", ev) == "(file)",
    ]
    pid = os.fork()
    if pid == 0:
        code = 100
        try:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, 65536)
            fd = os.open(tmp_path / "f", os.O_CREAT | os.O_RDWR, 0o600)
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            code = 101 if (fd, sock.fileno()) != (3, 4) else 0
            me = os.getpid()
            ev = Event(ts=1, type="openat", pid=me, tid=me, res=3, num=1)
            ev.proc = Process(pid=me, fds=ProcFdTypes())
            for i, check in enumerate(checks):
                if not code and not check(ev):
                    code = 1 + i
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0, f"check {os.WEXITSTATUS(status) - 1} failed in the child"


def test_live_enrichment_hands_processes_the_reader(tmp_path: Path) -> None:
    live = Enricher(proc_root=str(tmp_path), cgroup_root=str(tmp_path))
    ev = Event(ts=1, type="openat", pid=PID, tid=PID, res=3, comm="p")
    live.process(ev)
    assert ev.proc is not None and ev.proc.fds is live.fd_types is not None
    replay = Enricher(seed_from_proc=False)
    ev = Event(ts=1, type="openat", pid=PID, tid=PID, res=3, comm="p")
    replay.process(ev)
    assert ev.proc is not None and ev.proc.fds is None


def test_an_index_that_is_not_a_number_is_refused() -> None:
    res = load_rules_text("- rule: R\n  desc: d\n  output: o\n  priority: warning\n"
                          "  condition: fd.types[stdin] exists\n", "t.yaml")
    assert not res.ok
    assert "takes a descriptor number in brackets" in str(res.errors[0])


def test_operators_falco_refuses_on_a_list_warn() -> None:
    text = ("- rule: R\n  desc: d\n  output: o\n  priority: warning\n"
            "  condition: fd.types = ipv4 or fd.types intersects (pipe) or fd.types exists\n")
    res = load_rules_text(text, "t.yaml")
    assert res.ok and res.rules_loaded == 1
    warned = [d.message for d in res.warnings if d.code == "LOAD_FALCO_INCOMPATIBLE"]
    assert len(warned) == 1 and "only with 'in' or 'intersects'" in warned[0]
