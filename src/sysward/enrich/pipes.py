"""Who is on the other end of a pipe: the writer of a process's stdin, the reader of its stdout.

The kernel reports, at every exec, the type and inode of fds 0..2 (``args["stdio"]``); a
pipe's inode is its identity.  This table remembers, per pipe inode, the last process that
*exec'd* with that pipe as its stdout (the writer) and the last that exec'd with it as its
stdin (the reader).  Only execs register: in a shell pipeline both sides are forks of the
shell until they exec, and a fork's name (the shell's) says nothing about what will write.

Both sides of ``curl ... | sh`` exec at about the same time, in either order.  So the link
is made by whichever execs second: the reader's exec finds a writer that exec'd before it
(``Process.stdin_writer``), the writer's exec finds a reader that exec'd before it
(``Process.stdout_reader``).  A pipeline is therefore seen once, at its second exec, from
the side that came second; rules look at both fields (proc.stdin.writer.*,
proc.stdout.reader.*) to cover both orders.

Bounded: at most ``max_pipes`` inodes per direction, least recently registered first out
(counted); the estimate of its bytes counts the entries, not the processes they refer to
(those are the process table's, counted there while they live).
"""

from __future__ import annotations

from collections import OrderedDict

from sysward.events.model import Process

#: an entry: the dict slot, the int key and the reference (OrderedDict keeps a linked node)
ENTRY_BYTES = 160


def pipe_ino(stdio: list[dict[str, object] | None] | None, fd: int) -> int | None:
    """The inode of fd ``fd`` (0..2) when it is a pipe, else None."""
    if not stdio or fd >= len(stdio):
        return None
    entry = stdio[fd]
    if entry is None or entry.get("typechar") != "p":
        return None
    ino = entry.get("ino")
    return ino if isinstance(ino, int) and ino else None


class PipeTable:
    __slots__ = ("max_pipes", "_writers", "_readers", "evictions", "links")

    def __init__(self, max_pipes: int = 1024) -> None:
        if max_pipes < 1:
            raise ValueError("max_pipes must be at least 1")
        self.max_pipes = max_pipes
        self._writers: OrderedDict[int, Process] = OrderedDict()
        self._readers: OrderedDict[int, Process] = OrderedDict()
        self.evictions = 0
        self.links = 0  # execs that found the process on the other end

    def __len__(self) -> int:
        return len(self._writers) + len(self._readers)

    @property
    def bytes(self) -> int:
        return ENTRY_BYTES * len(self)

    def on_exec(self, proc: Process) -> None:
        """``proc`` exec'd with ``proc.stdio``: register its pipe ends, link its peers."""
        stdio = proc.stdio
        rd = pipe_ino(stdio, 0)
        wr = pipe_ino(stdio, 1)
        proc.stdin_writer = None
        proc.stdout_reader = None
        if rd is not None:
            writer = self._writers.get(rd)
            if writer is not None and writer is not proc:
                proc.stdin_writer = writer
                self.links += 1
            self._put(self._readers, rd, proc)
        if wr is not None:
            reader = self._readers.get(wr)
            if reader is not None and reader is not proc:
                proc.stdout_reader = reader
                self.links += 1
            self._put(self._writers, wr, proc)

    def writer(self, ino: int) -> Process | None:
        return self._writers.get(ino)

    def reader(self, ino: int) -> Process | None:
        return self._readers.get(ino)

    def _put(self, table: OrderedDict[int, Process], ino: int, proc: Process) -> None:
        if ino in table:
            table.move_to_end(ino)
        elif len(table) >= self.max_pipes:
            table.popitem(last=False)
            self.evictions += 1
        table[ino] = proc
