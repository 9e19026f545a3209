"""The process table: pid -> Process, bounded in entries and in (estimated) bytes.

Order is kept by an OrderedDict: ``touch`` moves an entry to the end (a C-level O(1)
operation), so the front is always the least recently seen.  Exited entries are also listed,
in exit order, in ``_exited``.

What an exited process is kept for, and for how long:

- A live descendant needs it for its ancestry (proc.pname, proc.aname[N]): children hold
  their parent through ``Process.parent``, so Python's own reference counting keeps the
  object exactly as long as some descendant (or an event being evaluated) refers to it.
  When the table lets an entry go it keeps only a weak reference (a *ghost*), which still
  answers parent lookups by pid and is counted in the table's bytes until the object is
  really freed.
- Events still on their way (a procexit racing a last write on another CPU, a parent's
  clone returning after its child already exited) need it by pid: an exited entry stays for
  ``exit_grace_s`` of *event time* -- the pipeline's progress, not the wall clock, so a long
  queue does not make late events miss it.
- Under churn the grace adapts: exited entries may use at most a quarter of the byte budget;
  beyond that the oldest go early (cause ``exited_early``), so the time they are kept
  shrinks as the exec rate grows instead of holding ``exit_grace_s`` of churn.

The byte figure is an estimate meant as an upper bound of what the table holds (it counts
argv/env lists shared between a parent and its forked children once per entry); a unit
test checks it against tracemalloc.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable

from sysward.events.model import Process

#: what an entry costs besides its lists and its two paths: the Process object (37 slots and
#: the GC header), its places in the table's dicts, the pid key, the large ints it holds
#: (start time, exit time) and the enricher's cgroup bookkeeping of the pid
ENTRY_BYTES = 768
#: per string held: the str object header (49 bytes for ASCII), malloc rounding, and the
#: pointer of the list that holds it
ITEM_BYTES = 64
LIST_BYTES = 56

#: why entries left the table (``evictions`` keys, the ``cause`` label of the metric)
CAUSES: tuple[str, ...] = ("expired", "exited_early", "budget", "count")

#: the share of the byte budget exited entries may use before they leave early
EXITED_SHARE = 4  # a quarter


def list_bytes(items: list[str]) -> int:
    """Estimated bytes of a list of strings (0 for an empty one: those are shared)."""
    if not items:
        return 0
    return LIST_BYTES + ITEM_BYTES * len(items) + sum(map(len, items))


def entry_bytes(proc: Process) -> int:
    """Estimated bytes of one entry.  Paths are counted as if not shared (they usually are:
    interned), which keeps the estimate an upper bound when every process has its own cwd."""
    return (ENTRY_BYTES + list_bytes(proc.argv) + list_bytes(proc.env)
            + len(proc.exepath) + len(proc.cwd))


class _Ghost(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a process the table let go, with what it was charged."""

    __slots__ = ("pid", "nbytes")
    pid: int
    nbytes: int


class ProcessTable:
    __slots__ = ("max_processes", "max_bytes", "exit_grace_ns", "exited_max_bytes", "_procs",
                 "_exited", "_ghosts", "bytes", "exited_bytes", "ghost_bytes", "evictions",
                 "inserts", "_newest_exit", "_early_at", "_early_window", "_gone",
                 "__weakref__")

    def __init__(self, max_processes: int = 65536, exit_grace_s: float = 2.0,
                 max_bytes: int = 32 << 20) -> None:
        if max_processes < 1:
            raise ValueError("max_processes must be at least 1")
        if max_bytes < 16 * ENTRY_BYTES:
            raise ValueError(f"max_bytes must be at least {16 * ENTRY_BYTES}")
        self.max_processes = max_processes
        self.max_bytes = max_bytes
        self.exited_max_bytes = max_bytes // EXITED_SHARE
        self.exit_grace_ns = int(exit_grace_s * 1e9)
        self._procs: OrderedDict[int, Process] = OrderedDict()
        self._exited: dict[int, int] = {}  # pid -> exit time (ns), in exit order
        self._ghosts: dict[int, _Ghost] = {}
        self.bytes = 0  # estimated bytes of the entries
        self.exited_bytes = 0  # ... of which exited entries
        self.ghost_bytes = 0  # estimated bytes of let-go processes still referred to
        self.evictions: dict[str, int] = dict.fromkeys(CAUSES, 0)
        self.inserts = 0
        self._newest_exit = 0
        self._early_at = 0  # newest exit time when an exited entry last left early
        self._early_window = 0  # how long exited entries had been kept at that moment
        # the ghost callback holds the table weakly: a table no one uses is freed at once
        self._gone = _ghost_callback(weakref.ref(self))

    def __len__(self) -> int:
        return len(self._procs)

    def __contains__(self, pid: int) -> bool:
        return pid in self._procs

    def get(self, pid: int) -> Process | None:
        return self._procs.get(pid)

    def lookup_parent(self, pid: int) -> Process | None:
        """The entry of ``pid``, or the process the table let go that still lives (an exited
        parent kept by its other children): ancestry must not depend on the grace."""
        proc = self._procs.get(pid)
        if proc is None:
            ghost = self._ghosts.get(pid)
            if ghost is not None:
                proc = ghost()
        return proc

    def touch(self, pid: int) -> None:
        self._procs.move_to_end(pid)

    def values(self) -> list[Process]:
        return list(self._procs.values())

    @property
    def exited_count(self) -> int:
        return len(self._exited)

    @property
    def ghost_count(self) -> int:
        return len(self._ghosts)

    @property
    def total_bytes(self) -> int:
        """Entries plus let-go processes still alive: what the budget bounds."""
        return self.bytes + self.ghost_bytes

    @property
    def effective_grace_ns(self) -> int:
        """How long exited entries are kept now: the grace, or less under churn."""
        if self._early_at and self._newest_exit - self._early_at <= self.exit_grace_ns:
            return min(self.exit_grace_ns, self._early_window)
        return self.exit_grace_ns

    def put(self, proc: Process) -> None:
        """Insert or replace the entry of ``proc.pid`` (a reused pid replaces the old one)."""
        pid = proc.pid
        procs = self._procs
        old = procs.get(pid)
        if old is not None:
            self.bytes -= old.table_bytes
            if self._exited.pop(pid, None) is not None:
                self.exited_bytes -= old.table_bytes
            procs.move_to_end(pid)
        else:
            ghost = self._ghosts.pop(pid, None)
            if ghost is not None:
                self.ghost_bytes -= ghost.nbytes
            if len(procs) >= self.max_processes:
                self._evict_one("count")
        size = entry_bytes(proc)
        proc.table_bytes = size
        self.bytes += size
        procs[pid] = proc
        self.inserts += 1
        if proc.exit_time:
            self._exited[pid] = proc.exit_time
            self.exited_bytes += size
        self._enforce_budget()

    def resize(self, proc: Process) -> None:
        """Charge ``proc`` again after its lists changed (an exec)."""
        if self._procs.get(proc.pid) is not proc:
            return
        size = entry_bytes(proc)
        delta = size - proc.table_bytes
        if not delta:
            return
        proc.table_bytes = size
        self.bytes += delta
        if proc.pid in self._exited:
            self.exited_bytes += delta
        if delta > 0:
            self._enforce_budget()

    def mark_exited(self, proc: Process, ts: int) -> None:
        proc.exit_time = ts or 1
        if ts > self._newest_exit:
            self._newest_exit = ts
        if self._procs.get(proc.pid) is proc:
            if self._exited.pop(proc.pid, None) is None:
                self.exited_bytes += proc.table_bytes
            self._exited[proc.pid] = proc.exit_time  # keep _exited sorted by exit time
            if self.exited_bytes > self.exited_max_bytes:
                self._enforce_budget()

    def expire(self, now_ns: int) -> int:
        """Remove exited entries whose grace period has passed; returns how many."""
        deadline = now_ns - self.exit_grace_ns
        removed = 0
        exited = self._exited
        while exited:
            pid, ts = next(iter(exited.items()))
            if ts > deadline:
                break
            self._remove(pid, "expired")
            removed += 1
        return removed

    def remove(self, pid: int) -> None:
        proc = self._procs.pop(pid, None)
        if proc is not None:
            self.bytes -= proc.table_bytes
            if self._exited.pop(pid, None) is not None:
                self.exited_bytes -= proc.table_bytes

    # ---- what leaves, and why ----------------------------------------------------------

    def _enforce_budget(self) -> None:
        exited = self._exited
        while exited and self.exited_bytes > self.exited_max_bytes:
            self._leave_early()
        procs = self._procs
        while self.bytes + self.ghost_bytes > self.max_bytes and len(procs) > 1:
            if exited:
                self._leave_early()
            else:
                self._remove(next(iter(procs)), "budget")

    def _leave_early(self) -> None:
        pid, ts = next(iter(self._exited.items()))
        self._early_at = self._newest_exit
        self._early_window = max(0, self._newest_exit - ts)
        self._remove(pid, "exited_early")

    def _evict_one(self, cause: str) -> None:
        if self._exited:
            self._leave_early()
        else:
            self._remove(next(iter(self._procs)), cause)

    def _remove(self, pid: int, cause: str) -> None:
        proc = self._procs.pop(pid)
        size = proc.table_bytes
        self.bytes -= size
        if self._exited.pop(pid, None) is not None:
            self.exited_bytes -= size
        self.evictions[cause] += 1
        # Keep a weak reference: if a child's parent link (or an event) still holds the
        # process, it stays findable and counted until the last holder lets it go; if
        # nothing does, it is freed when ``proc`` goes out of scope below and the callback
        # takes the ghost out again.
        ghost = _Ghost(proc, self._gone)
        ghost.pid, ghost.nbytes = pid, size
        old = self._ghosts.get(pid)
        if old is not None:
            self.ghost_bytes -= old.nbytes
        self._ghosts[pid] = ghost
        self.ghost_bytes += size

    def _ghost_gone(self, ghost: _Ghost) -> None:
        if self._ghosts.get(ghost.pid) is ghost:
            del self._ghosts[ghost.pid]
            self.ghost_bytes -= ghost.nbytes


def _ghost_callback(table_ref: weakref.ref[ProcessTable]) -> Callable[[_Ghost], None]:
    def gone(ghost: _Ghost) -> None:
        table = table_ref()
        if table is not None:
            table._ghost_gone(ghost)

    return gone
