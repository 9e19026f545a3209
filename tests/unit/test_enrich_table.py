"""Process table kept current from synthetic event sequences (no /proc involved)."""

from __future__ import annotations

from typing import Any

import pytest

from sysward.enrich import Enricher, ProcessTable
from sysward.events.model import EXE_FROM_MEMFD, Event, Process

SEC = 1_000_000_000
T0 = 1_800_000_000 * SEC


def ev(type_: str, pid: int, ts: int = T0, res: int = 0, **kw: Any) -> Event:
    args = kw.pop("args", {})
    kw.setdefault("tid", pid)
    return Event(ts=ts, type=type_, pid=pid, res=res, args=args, **kw)


def offline(**kw: Any) -> Enricher:
    return Enricher(seed_from_proc=False, **kw)


def test_fork_exec_exit_expiry() -> None:
    enr = offline(exit_grace_s=5)
    # an unknown shell: a miss, created from the header
    e = ev("openat", 100, ppid=1, comm="bash", uid=0, args={"name": "/etc/hosts"})
    enr.process(e)
    assert e.proc is not None and e.proc.pid == 100 and e.proc.comm == "bash"
    assert e.proc.user == "root"
    assert enr.stats()["sysward_enrich_misses_total"] == 1

    enr.process(ev("clone", 100, ts=T0 + 1, res=101, ppid=1, comm="bash", args={"flags": 0x11}))
    child = enr.lookup(101)
    assert child is not None and child.ppid == 100 and child.parent is enr.lookup(100)
    assert child.comm == "bash" and child.start_time == T0 + 1

    ex = ev("execve", 101, ts=T0 + 2, ppid=100, comm="cat", uid=1000, euid=1000,
            args={"filename": "/usr/bin/cat", "argv": ["cat", "/etc/shadow"], "cwd": "/tmp",
                  "env": ["A=1"], "exe_flags": EXE_FROM_MEMFD, "cap_effective": 5})
    enr.process(ex)
    p = ex.proc
    assert p is child
    assert (p.exepath, p.argv, p.cwd, p.env, p.comm) == (
        "/usr/bin/cat", ["cat", "/etc/shadow"], "/tmp", ["A=1"], "cat")
    assert p.exe_flags == EXE_FROM_MEMFD and p.cap_effective == 5 and p.uid == 1000
    assert p.parent is not None and p.parent.comm == "bash"
    assert enr.stats()["sysward_enrich_misses_total"] == 1  # the child was no miss

    enr.process(ev("procexit", 101, ts=T0 + 3 * SEC, ppid=100, comm="cat"))
    assert p.exit_time == T0 + 3 * SEC
    assert enr.lookup(101) is p  # still there during the grace period
    assert enr.expire(T0 + 7 * SEC) == 0
    assert enr.expire(T0 + 8 * SEC) == 1
    assert enr.lookup(101) is None and enr.lookup(100) is not None
    st = enr.stats()
    assert st["sysward_enrich_forks_total"] == 1 and st["sysward_enrich_execs_total"] == 1
    assert st["sysward_enrich_exits_total"] == 1
    assert st["sysward_enrich_evictions_expired_total"] == 1


def test_expiry_runs_from_event_time() -> None:
    enr = offline(exit_grace_s=1)
    enr.process(ev("procexit", 5, ts=T0))
    enr.process(ev("openat", 6, ts=T0 + 3 * SEC))  # later traffic expires the exited entry
    assert enr.lookup(5) is None and enr.stats()["sysward_enrich_evictions_expired_total"] == 1


def test_failed_exec_and_thread_clone_change_nothing() -> None:
    enr = offline()
    enr.process(ev("execve", 10, comm="sh", args={"filename": "/bin/sh", "argv": ["sh"]}))
    enr.process(ev("execve", 10, res=-2, comm="sh",
                   args={"filename": "/nope", "argv": ["nope"]}))
    assert enr.lookup(10).exepath == "/bin/sh"  # type: ignore[union-attr]
    enr.process(ev("clone", 10, res=11, args={"flags": 0x10000 | 0x100}))  # CLONE_THREAD
    assert enr.lookup(11) is None
    enr.process(ev("clone", 10, res=-11, args={"flags": 0}))  # failed
    assert enr.lookup(11) is None and enr.stats()["sysward_enrich_forks_total"] == 0


def test_clone_parent_makes_a_sibling() -> None:
    enr = offline()
    enr.process(ev("openat", 20, ppid=0, comm="init"))
    enr.process(ev("clone", 20, res=21))
    enr.process(ev("clone", 21, res=22, ppid=20, args={"flags": 0x8000}))  # CLONE_PARENT
    sib = enr.lookup(22)
    assert sib is not None and sib.ppid == 20 and sib.parent is enr.lookup(20)


def test_ancestry_eight_levels_deep() -> None:
    enr = offline()
    enr.process(ev("openat", 1000, ppid=1, comm="init"))
    pid = 1000
    for level in range(1, 11):
        child = 1000 + level
        enr.process(ev("vfork", pid, res=child))
        enr.process(ev("execve", child, comm=f"p{level}", ppid=pid,
                       args={"filename": f"/bin/p{level}", "argv": [f"p{level}"]}))
        pid = child
    last = ev("openat", pid, ppid=pid - 1, comm="p10")
    enr.process(last)
    names, pids = [], []
    p = last.proc
    assert p is not None
    while p.parent is not None:
        p = p.parent
        names.append(p.comm)
        pids.append(p.pid)
    assert names == [f"p{i}" for i in range(9, 0, -1)] + ["init"]
    assert pids == list(range(1009, 999, -1))


def test_rename_and_reparent_follow_the_header() -> None:
    enr = offline()
    enr.process(ev("openat", 30, ppid=1, comm="init"))
    enr.process(ev("openat", 31, ppid=30, comm="python"))
    enr.process(ev("openat", 31, ppid=30, comm="nginx"))  # prctl(PR_SET_NAME)
    assert enr.lookup(31).comm == "nginx"  # type: ignore[union-attr]
    enr.process(ev("openat", 1, ppid=0, comm="systemd"))
    enr.process(ev("openat", 31, ppid=1, comm="nginx"))  # its parent died: re-parented
    p = enr.lookup(31)
    assert p is not None and p.ppid == 1 and p.parent is enr.lookup(1)


def test_setuid_and_chdir() -> None:
    enr = offline()
    enr.process(ev("openat", 40, uid=1000, gid=1000, euid=1000, egid=1000))
    enr.process(ev("setuid", 40, uid=0, euid=0, gid=1000, egid=1000, args={"uid": 0}))
    p = enr.lookup(40)
    assert p is not None and (p.uid, p.euid, p.user) == (0, 0, "root")
    enr.process(ev("setuid", 40, res=-1, uid=5, euid=5, args={"uid": 5}))  # refused
    assert p.uid == 0
    enr.process(ev("chdir", 40, uid=0, euid=0, args={"path": "/var/tmp"}))
    assert p.cwd == "/var/tmp"


def test_carried_proc_is_kept_and_remembered() -> None:
    enr = offline()
    parent = Process(pid=1, comm="systemd")
    given = Process(pid=50, ppid=1, comm="nginx", argv=["nginx", "-g"], parent=parent,
                    container_id="abcdef012345")
    e = ev("execve", 50, comm="sh", args={"filename": "/bin/sh", "argv": ["sh"]})
    e.proc = given
    enr.process(e)
    assert e.proc is given and given.argv == ["nginx", "-g"] and given.parent is parent
    assert enr.lookup(50) is given
    later = ev("openat", 50, comm="nginx")
    enr.process(later)
    assert later.proc is given and enr.stats()["sysward_enrich_carried_total"] == 1


def test_eviction_prefers_exited_then_least_recently_seen() -> None:
    enr = offline(max_processes=4)
    for pid in (1, 2, 3, 4):
        enr.process(ev("openat", pid))
    enr.process(ev("procexit", 3))
    enr.process(ev("openat", 1))  # 1 is now recently seen; 2 is the oldest live entry
    enr.process(ev("openat", 5))  # full: the exited 3 goes first
    assert enr.lookup(3) is None and len(enr.table) == 4
    enr.process(ev("openat", 6))  # no exited left: least recently seen (2) goes
    assert enr.lookup(2) is None and enr.lookup(1) is not None
    st = enr.stats()
    assert st["sysward_enrich_evictions_exited_early_total"] == 1
    assert st["sysward_enrich_evictions_count_total"] == 1
    assert st["sysward_enrich_processes"] == 4


def test_pid_reuse_replaces_exited_entry() -> None:
    enr = offline(exit_grace_s=60)
    enr.process(ev("openat", 70, comm="old"))
    enr.process(ev("procexit", 70, comm="old"))
    enr.process(ev("clone", 71, res=70))
    fresh = enr.lookup(70)
    assert fresh is not None and fresh.exit_time == 0 and fresh.ppid == 71
    assert enr.table.exited_count == 0 and enr.expire(T0 + 3600 * SEC) == 0


def test_process_batch_matches_process() -> None:
    a, b = offline(), offline()
    seq = [ev("openat", 1, comm="init"), ev("fork", 1, res=2), ev("execve", 2, ppid=1,
           comm="ls", args={"filename": "/bin/ls", "argv": ["ls"]}), ev("procexit", 2)]
    for e in seq:
        a.process(e)
    seq2 = [Event.from_dict(e.to_dict()) for e in seq]
    b.process_batch(seq2)
    assert [e.proc.comm for e in seq2] == [e.proc.comm for e in seq]  # type: ignore[union-attr]
    assert a.stats() == b.stats()


def test_table_rejects_zero_size() -> None:
    with pytest.raises(ValueError):
        ProcessTable(0)


def test_samples_are_named_for_prometheus() -> None:
    enr = offline()
    enr.process(ev("openat", 1))
    samples = {s.name: s for s in enr.samples()}
    assert samples["sysward_enrich_events_total"].kind == "counter"
    assert samples["sysward_enrich_events_total"].value == 1
    assert samples["sysward_enrich_processes"].kind == "gauge"
    assert all(n.startswith("sysward_enrich_") for n in samples)


def test_vfork_child_exec_reported_before_the_parents_clone_is_kept() -> None:
    # posix_spawn/vfork: the child's execve exit event comes before the parent's vfork exit
    from sysward.enrich import Enricher
    from sysward.events.model import Event

    enr = Enricher(seed_from_proc=False)
    parent = Event(ts=1_000, type="execve", pid=100, ppid=1, comm="bench",
                   start_time=500, args={"filename": "/usr/bin/python3",
                                         "argv": ["python3", "bench.py"]})
    enr.process(parent)
    child_exec = Event(ts=2_000, type="execve", pid=101, ppid=100, comm="ln",
                       start_time=1_500, args={"filename": "/usr/bin/ln",
                                               "argv": ["ln", "-s", "/etc/shadow", "x"]})
    enr.process(child_exec)
    clone = Event(ts=3_000, type="vfork", pid=100, ppid=1, comm="bench", res=101,
                  start_time=500)
    enr.process(clone)
    child = enr.lookup(101)
    assert child is not None
    assert child.argv == ["ln", "-s", "/etc/shadow", "x"] and child.comm == "ln"
    assert child.parent is not None and child.parent.pid == 100
