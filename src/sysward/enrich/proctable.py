"""The process table: pid -> Process, bounded, with least-recently-seen order.

Order is kept by an OrderedDict: ``touch`` moves an entry to the end (a C-level O(1)
operation), so the front is always the least recently seen.  Exited entries are also listed,
in exit order, in ``_exited``; they are the first to go when the table is full and they
leave for good after the grace period (late events of a process — a procexit racing a last
write on another CPU — still find their entry meanwhile).
"""

from __future__ import annotations

from collections import OrderedDict

from sysward.events.model import Process


class ProcessTable:
    __slots__ = ("max_processes", "exit_grace_ns", "_procs", "_exited",
                 "evictions", "evictions_exited", "expired", "inserts")

    def __init__(self, max_processes: int = 65536, exit_grace_s: float = 30.0) -> None:
        if max_processes < 1:
            raise ValueError("max_processes must be at least 1")
        self.max_processes = max_processes
        self.exit_grace_ns = int(exit_grace_s * 1e9)
        self._procs: OrderedDict[int, Process] = OrderedDict()
        self._exited: dict[int, int] = {}  # pid -> exit time (ns), in exit order
        self.evictions = 0  # entries removed because the table was full (all kinds)
        self.evictions_exited = 0  # ... of which were exited entries
        self.expired = 0  # exited entries removed after the grace period
        self.inserts = 0

    def __len__(self) -> int:
        return len(self._procs)

    def __contains__(self, pid: int) -> bool:
        return pid in self._procs

    def get(self, pid: int) -> Process | None:
        return self._procs.get(pid)

    def touch(self, pid: int) -> None:
        self._procs.move_to_end(pid)

    def values(self) -> list[Process]:
        return list(self._procs.values())

    @property
    def exited_count(self) -> int:
        return len(self._exited)

    def put(self, proc: Process) -> None:
        """Insert or replace the entry of ``proc.pid`` (a reused pid replaces the old one)."""
        pid = proc.pid
        procs = self._procs
        if pid in procs:
            procs.move_to_end(pid)
            self._exited.pop(pid, None)
        elif len(procs) >= self.max_processes:
            self._evict_one()
        procs[pid] = proc
        self.inserts += 1
        if proc.exit_time:
            self._exited[pid] = proc.exit_time

    def _evict_one(self) -> None:
        if self._exited:
            pid = next(iter(self._exited))
            del self._exited[pid]
            self._procs.pop(pid, None)
            self.evictions_exited += 1
        else:
            self._procs.popitem(last=False)
        self.evictions += 1

    def mark_exited(self, proc: Process, ts: int) -> None:
        proc.exit_time = ts or 1
        if self._procs.get(proc.pid) is proc:
            self._exited.pop(proc.pid, None)  # keep _exited sorted by exit time
            self._exited[proc.pid] = proc.exit_time

    def expire(self, now_ns: int) -> int:
        """Remove exited entries whose grace period has passed; returns how many."""
        deadline = now_ns - self.exit_grace_ns
        removed = 0
        exited = self._exited
        while exited:
            pid, ts = next(iter(exited.items()))
            if ts > deadline:
                break
            del exited[pid]
            self._procs.pop(pid, None)
            removed += 1
        self.expired += removed
        return removed

    def remove(self, pid: int) -> None:
        self._procs.pop(pid, None)
        self._exited.pop(pid, None)
