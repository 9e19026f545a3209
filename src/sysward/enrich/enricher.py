"""The enrichment stage: give every event its process context (``event.proc``).

Per event the common case is one dict lookup, a move-to-end for the least-recently-seen
order, and two comparisons that keep comm and ppid current (a process may rename itself
with prctl or be re-parented when its parent dies).  Only the few event types that change a
process (clone family, exec, exit, set*id, capset, chdir) run a handler, and /proc is read
only for pids the table has never seen (live mode) — never per event.

Lists (argv, env) are shared between a parent and its forked child, and with the exec event
that carried them, rather than copied: nothing in sysward mutates them in place; exec
replaces them.  Entries are kept small (``compact.py``: shared strings, capped lists, env
only as far as the rules read it) and the table is bounded in bytes (``proctable.py``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sysward.enrich.compact import Compactor
from sysward.enrich.containers import (
    HOST,
    CgroupResolver,
    ContainerMetadata,
    ContainerRef,
    find_cgroup2_mount,
    parse_cgroup_path,
)
from sysward.enrich.fdtypes import ProcFdTypes
from sysward.enrich.pipes import PipeTable
from sysward.enrich.procfs import ProcReader
from sysward.enrich.proctable import CAUSES, ProcessTable
from sysward.enrich.users import UserDb
from sysward.events.model import Event, Process
from sysward.events.types import GROUPS
from sysward.metrics import Sample, samples_from_stats

if TYPE_CHECKING:
    from sysward.enrich.cri.watcher import CriWatcher

CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000

#: how far a miss follows unknown parents through /proc (ancestry fields need 8 levels)
MAX_ANCESTRY_READ = 16
#: tolerance when matching a /proc entry's start time to an event's (ticks are 10 ms)
_START_TOLERANCE_NS = 100_000_000
#: expire exited entries at most this often (in event time)
_EXPIRE_EVERY_NS = 250_000_000
#: a child whose exit was seen before its parent's clone returned started this recently
_CLONE_RACE_NS = 1_000_000_000



class Enricher:
    def __init__(
        self,
        *,
        max_processes: int = 65536,
        exit_grace_s: float = 2.0,
        max_bytes: int = 32 << 20,
        max_argv_bytes: int = 16384,
        max_env_bytes: int = 8192,
        env_keys: frozenset[str] | None = None,
        seed_from_proc: bool = True,
        proc_root: str = "/proc",
        cgroup_root: str = "/sys/fs/cgroup",
        docker_root: str = "/var/lib/docker",
        podman_root: str = "/var/lib/containers/storage",
        cri: CriWatcher | None = None,
    ) -> None:
        self.table = ProcessTable(max_processes, exit_grace_s, max_bytes)
        self.pipes = PipeTable()
        # env_keys None keeps the whole environment: the agent narrows it to what its rules
        # read (``set_env_keys``)
        self.compact = Compactor(max_argv_bytes, max_env_bytes, env_keys)
        # live = this machine's /proc describes the events (not a replay of a capture)
        self.live = seed_from_proc
        self.reader = ProcReader(proc_root)
        # fd.types reads this machine's /proc when a rule asks: only for live processes
        self.fd_types = ProcFdTypes(proc_root) if self.live else None
        self.users = UserDb()
        mount = find_cgroup2_mount(f"{proc_root}/self/mountinfo") if self.live else None
        if mount is None and self.live and _is_cgroup2(cgroup_root):
            mount = cgroup_root
        self.cgroups = CgroupResolver(mount, proc_root=proc_root)
        self.containers = ContainerMetadata(docker_root=docker_root, podman_root=podman_root,
                                            cri=cri)
        self._cgroup_of: dict[int, int] = {}  # pid -> cgroup id last applied to its entry
        self._last_pid = -1
        self._next_expire = 0
        self.events = 0
        self.seeded = 0
        self.misses = 0
        self.miss_proc_reads = 0
        self.carried = 0
        self.forks = 0
        self.execs = 0
        self.exits = 0
        # by group of the event table; setfsuid/setfsgid are not sysward types but come in
        # replayed Falco captures
        by_group: tuple[tuple[tuple[str, ...], Callable[[Event, Process], None]], ...] = (
            (GROUPS["fork"], self._on_clone),
            (GROUPS["exec"], self._on_exec),
            (GROUPS["exit"], self._on_exit),
            (GROUPS["chdir"], self._on_chdir),
            (("capset",), self._on_capset),
            ((*GROUPS["setuid"], *GROUPS["setgid"], "setfsuid", "setfsgid"), self._on_setid),
        )
        self._handlers: dict[str, Callable[[Event, Process], None]] = {
            name: handler for names, handler in by_group for name in names}
        # structural handlers also run for events that carry their own process context
        structural = (self._on_clone, self._on_exit)
        self._carried_handlers: dict[str, Callable[[Event, Process], None]] = {
            k: v for k, v in self._handlers.items() if v in structural}
        if seed_from_proc:
            self.seed()

    # ---- public API -------------------------------------------------------------------

    def seed(self) -> int:
        """Read every /proc/<pid> once into the table; returns how many were read.

        Entries already in the table are replaced by what /proc says now.  The agent seeds at
        construction; calling it again after the programs are attached closes the gap of
        processes started in between (misses would fill it too, one by one).
        """
        count = 0
        fresh: list[Process] = []
        for pid in self.reader.pids():
            proc = self.reader.read(pid)
            if proc is None:
                continue  # exited between listdir and read
            self._complete(proc)
            self.table.put(proc)
            fresh.append(proc)
            count += 1
        for proc in fresh:
            proc.parent = self.table.lookup_parent(proc.ppid) if proc.ppid else None
        self.seeded += count
        return count

    def process(self, event: Event) -> None:
        self.events += 1
        self._enrich(event)
        if event.ts >= self._next_expire:
            self._next_expire = event.ts + _EXPIRE_EVERY_NS
            self.table.expire(event.ts)

    def process_batch(self, events: list[Event]) -> None:
        self.events += len(events)
        enrich = self._enrich
        for event in events:
            enrich(event)
        if events and events[-1].ts >= self._next_expire:
            self._next_expire = events[-1].ts + _EXPIRE_EVERY_NS
            self.table.expire(events[-1].ts)

    def lookup(self, pid: int) -> Process | None:
        return self.table.get(pid)

    def set_env_keys(self, keys: frozenset[str] | None) -> None:
        """What of the environment to keep from now on: None all of it, else these keys."""
        self.compact.env_keys = keys

    def expire(self, now_ns: int | None = None) -> int:
        return self.table.expire(time.time_ns() if now_ns is None else now_ns)

    def stats(self) -> dict[str, int | float]:
        t = self.table
        ev = t.evictions
        return {
            "sysward_enrich_events_total": self.events,
            "sysward_enrich_processes": len(t),
            "sysward_enrich_processes_exited": t.exited_count,
            "sysward_enrich_processes_retained": t.ghost_count,
            "sysward_enrich_max_processes": t.max_processes,
            "sysward_enrich_table_bytes": t.total_bytes,
            "sysward_enrich_table_max_bytes": t.max_bytes,
            "sysward_enrich_exit_grace_seconds": t.effective_grace_ns / 1e9,
            "sysward_enrich_seeded_total": self.seeded,
            "sysward_enrich_misses_total": self.misses,
            "sysward_enrich_miss_proc_reads_total": self.miss_proc_reads,
            "sysward_enrich_carried_total": self.carried,
            "sysward_enrich_forks_total": self.forks,
            "sysward_enrich_execs_total": self.execs,
            "sysward_enrich_exits_total": self.exits,
            **{f"sysward_enrich_evictions_{cause}_total": ev[cause] for cause in CAUSES},
            "sysward_enrich_lists_capped_total": self.compact.capped,
            "sysward_enrich_pipes": len(self.pipes),
            "sysward_enrich_pipe_bytes": self.pipes.bytes,
            "sysward_enrich_pipe_evictions_total": self.pipes.evictions,
            "sysward_enrich_pipe_links_total": self.pipes.links,
            "sysward_enrich_cgroup_misses_total": self.cgroups.misses,
            "sysward_enrich_cgroup_rescans_total": self.cgroups.rescans,
            "sysward_enrich_user_lookups_total": self.users.lookups,
            **self.containers.stats(),
        }

    def samples(self) -> list[Sample]:
        """Telemetry source: ``telemetry.add_source(enricher.samples)``."""
        return samples_from_stats(self.stats())

    # ---- per event --------------------------------------------------------------------

    def _enrich(self, event: Event) -> None:
        carried = event.proc
        if carried is not None:
            self.carried += 1
            self.table.put(carried)
            self._last_pid = carried.pid
            handler = self._carried_handlers.get(event.type)
            if handler is not None:
                handler(event, carried)
            return
        pid = event.pid
        proc = self.table.get(pid)
        if proc is None:
            proc = self._miss(event)
        elif pid != self._last_pid:
            self.table.touch(pid)
        self._last_pid = pid
        if event.comm and event.comm != proc.comm:
            proc.comm = sys.intern(event.comm)  # prctl(PR_SET_NAME) renames without an exec
        if event.ppid and event.ppid != proc.ppid:
            proc.ppid = event.ppid  # re-parented (the parent died) or filled in late
            proc.parent = self.table.lookup_parent(event.ppid)
        elif proc.parent is None and proc.ppid:
            proc.parent = self.table.lookup_parent(proc.ppid)
        handler = self._handlers.get(event.type)
        if handler is not None:
            handler(event, proc)
        event.proc = proc

    def _miss(self, event: Event) -> Process:
        self.misses += 1
        proc: Process | None = None
        if self.live:
            proc = self._read_live(event.pid, event.start_time)
        if proc is None:
            proc = self._from_header(event)
        elif event.cgroup_id:
            self._cgroup_of[proc.pid] = event.cgroup_id
        self.table.put(proc)
        if proc.ppid and self.live:
            self._link_live_ancestors(proc)
        return proc

    def _from_header(self, event: Event) -> Process:
        num = self.compact.intern_int
        proc = Process(
            pid=event.pid, ppid=event.ppid, comm=sys.intern(event.comm), uid=event.uid,
            gid=event.gid, euid=event.euid, egid=event.egid, loginuid=event.loginuid,
            tty=event.tty, start_time=event.start_time, pidns=num(event.pidns),
            mntns=num(event.mntns), fds=self.fd_types,
        )
        self._set_names(proc)
        self._apply_cgroup_id(proc, event.cgroup_id)
        if proc.ppid:
            proc.parent = self.table.lookup_parent(proc.ppid)
        return proc

    def _read_live(self, pid: int, start_time: int = 0) -> Process | None:
        proc = self.reader.read(pid)
        if proc is None:
            return None
        if start_time and abs(proc.start_time - start_time) > _START_TOLERANCE_NS:
            return None  # the pid was reused since the event happened
        self.miss_proc_reads += 1
        self._complete(proc)
        return proc

    def _link_live_ancestors(self, proc: Process) -> None:
        """Fill unknown ancestors from /proc so aname[n]/apid[n] work after a miss."""
        child = proc
        for _ in range(MAX_ANCESTRY_READ):
            parent = self.table.lookup_parent(child.ppid)
            if parent is None:
                parent = self._read_live(child.ppid)
                if parent is None:
                    return
                self.misses += 1
                self.table.put(parent)
            assert parent is not None
            child.parent = parent
            if parent.parent is not None or not parent.ppid:
                return
            child = parent

    def _complete(self, proc: Process) -> None:
        """Names and container identity of a Process read from /proc; compacted."""
        proc.fds = self.fd_types
        self._set_names(proc)
        ref = parse_cgroup_path(proc.cgroup)
        if ref is not None:
            self._set_container(proc, ref, 0)
        self.compact.process(proc)

    def _set_names(self, proc: Process) -> None:
        users = self.users
        proc.user = users.user_name(proc.uid)
        proc.group = users.group_name(proc.gid)
        proc.loginname = users.user_name(proc.loginuid) if proc.loginuid != 0xFFFFFFFF else ""

    def _apply_cgroup_id(self, proc: Process, cgroup_id: int) -> None:
        if not cgroup_id or self._cgroup_of.get(proc.pid) == cgroup_id:
            return
        if len(self._cgroup_of) > 2 * len(self.table) + 4096:
            # pids evicted without an exit leave stale entries; forgetting all of them only
            # costs one cached resolve per process at its next exec
            self._cgroup_of.clear()
        self._cgroup_of[proc.pid] = cgroup_id
        if not self.live:
            return  # ids of a capture mean nothing on this machine
        path = self.cgroups.resolve(cgroup_id, proc.pid)
        if path is None:
            return
        proc.cgroup = sys.intern(path)
        ref = parse_cgroup_path(path)
        if ref is None:
            proc.container_id, proc.container_name, proc.container_image = HOST, "", ""
            proc.container = None
        else:
            self._set_container(proc, ref, cgroup_id)

    def _set_container(self, proc: Process, ref: ContainerRef, cgroup_id: int) -> None:
        info = self.containers.get(ref, cgroup_id)
        meta = info.meta
        proc.container_id, proc.container = sys.intern(ref.short_id), info
        proc.container_name, proc.container_image = (
            (sys.intern(meta.name), sys.intern(meta.image)) if meta is not None else ("", ""))

    # ---- handlers for the event types that change a process ----------------------------

    def _on_clone(self, event: Event, parent: Process) -> None:
        child_pid = event.res
        if child_pid <= 0:
            return  # failed, or the child's own return from clone
        flags = event.args.get("flags") or 0
        if flags & CLONE_THREAD:
            return  # a new thread of the same process
        self.forks += 1
        ppid: int = parent.pid
        up: Process | None = parent
        if flags & CLONE_PARENT:  # the child becomes a sibling of the caller
            ppid, up = parent.ppid, parent.parent
        known = self.table.get(child_pid)
        if (known is not None and known.ppid in (0, ppid)
                and known.start_time >= parent.start_time
                and (not known.exit_time or known.start_time >= event.ts - _CLONE_RACE_NS)):
            # vfork / posix_spawn: the parent's clone returns only after the child has
            # exec'd, so the child's exec (and its new argv) is already in the table; a copy
            # of the parent made now would overwrite it.  The same after a fork whose child
            # ran on another CPU and already exited: a copy would bring it back to life as
            # an entry no exit ever removes.
            known.ppid = ppid
            if known.parent is None:
                known.parent = up
            return
        child = Process(
            pid=child_pid, ppid=ppid, comm=parent.comm, exepath=parent.exepath,
            argv=parent.argv, cwd=parent.cwd, uid=parent.uid, gid=parent.gid,
            euid=parent.euid, egid=parent.egid, loginuid=parent.loginuid, user=parent.user,
            group=parent.group, loginname=parent.loginname, tty=parent.tty, sid=parent.sid,
            pgid=parent.pgid, start_time=event.ts, exe_flags=parent.exe_flags,
            cap_effective=parent.cap_effective, cap_permitted=parent.cap_permitted,
            cap_inheritable=parent.cap_inheritable, env=parent.env, cgroup=parent.cgroup,
            container_id=parent.container_id, container_name=parent.container_name,
            container_image=parent.container_image, container=parent.container,
            pidns=parent.pidns, mntns=parent.mntns, parent=up, fds=parent.fds,
            stdio=parent.stdio, stdin_writer=parent.stdin_writer,
            stdout_reader=parent.stdout_reader,
        )
        cg = self._cgroup_of.get(parent.pid)
        if cg is not None:
            self._cgroup_of[child_pid] = cg
        else:
            self._cgroup_of.pop(child_pid, None)
        self.table.put(child)

    def _on_exec(self, event: Event, proc: Process) -> None:
        if event.res != 0:
            return
        self.execs += 1
        args = event.args
        compact = self.compact
        num = compact.intern_int
        filename = args.get("filename")
        if filename:
            proc.exepath = sys.intern(filename)
        argv = args.get("argv")
        # the event's own lists are kept (not copied): the decoder made them for this event
        proc.argv = compact.argv(argv) if argv is not None else [proc.exepath]
        proc.env = compact.env(args.get("env"))
        cwd = args.get("cwd")
        if cwd:
            proc.cwd = sys.intern(cwd)
        proc.exe_flags = args.get("exe_flags") or 0
        stdio = args.get("stdio")
        proc.stdio = stdio if isinstance(stdio, list) else None
        self.pipes.on_exec(proc)
        proc.cap_effective = num(args.get("cap_effective", proc.cap_effective))
        proc.cap_permitted = num(args.get("cap_permitted", proc.cap_permitted))
        proc.cap_inheritable = num(args.get("cap_inheritable", proc.cap_inheritable))
        if event.comm:
            proc.comm = sys.intern(event.comm)
        self.table.resize(proc)
        parent = proc.parent
        if self.live and parent is not None and not parent.exit_time:
            # A parent that renamed itself (prctl PR_SET_NAME, as servers do) and then used
            # vfork reports nothing between the rename and this exec (its vfork returns only
            # afterwards), so its comm in the table can be stale: one small read per exec
            # keeps proc.pname right.
            comm = self.reader.read_comm(parent.pid)
            if comm and comm != parent.comm:
                parent.comm = sys.intern(comm)
        self._take_ids(event, proc)
        # a container's first process is usually moved into its cgroup between fork and exec
        self._apply_cgroup_id(proc, event.cgroup_id)

    def _on_exit(self, event: Event, proc: Process) -> None:
        self.exits += 1
        self.table.mark_exited(proc, event.ts)
        self._cgroup_of.pop(proc.pid, None)

    def _on_setid(self, event: Event, proc: Process) -> None:
        if event.res == 0:
            self._take_ids(event, proc)

    def _on_capset(self, event: Event, proc: Process) -> None:
        if event.res == 0:
            args = event.args
            num = self.compact.intern_int
            proc.cap_effective = num(args.get("cap_effective", proc.cap_effective))
            proc.cap_permitted = num(args.get("cap_permitted", proc.cap_permitted))
            proc.cap_inheritable = num(args.get("cap_inheritable", proc.cap_inheritable))

    def _on_chdir(self, event: Event, proc: Process) -> None:
        path = event.args.get("path")
        if event.res == 0 and path:
            proc.cwd = sys.intern(path)

    def _take_ids(self, event: Event, proc: Process) -> None:
        changed = (proc.uid != event.uid or proc.gid != event.gid
                   or proc.loginuid != event.loginuid)
        proc.uid, proc.gid, proc.euid, proc.egid = event.uid, event.gid, event.euid, event.egid
        proc.loginuid = event.loginuid
        if changed or not proc.user:
            self._set_names(proc)


def _is_cgroup2(path: str) -> bool:
    return os.path.exists(os.path.join(path, "cgroup.controllers"))
