"""fd.types: the types of a live process's open descriptors, read from /proc when a rule asks.

Falco keeps a descriptor table per process from every syscall that makes, copies or closes a
descriptor.  sysward does not: its kernel prefilter drops the opens, closes and socket calls
no rule asks about (99.98 % of the file events with the default rules), and a table kept from
what is left would be wrong.  The kernel still has the table, and /proc shows it, so the value
is read from ``/proc/<tid>/fd`` at the moment a rule's condition reaches ``fd.types`` -- only
then, never per event -- and kept for the rest of that event's rules.

What this means (docs/rules-guide.md says it to users):

- The descriptors are those open when the rule is evaluated, a few milliseconds after the
  event (the reader drains every 5 ms), not at the event itself.
- A process that has exited by then has none to read: the field is missing (comparisons are
  false).  A replayed capture has no /proc to read either: missing.  (A pid reused in those
  milliseconds would show the new process's table; the kernel hands pids out in increasing
  order, so that needs pid_max wrapping around within them.)
- Cost, measured in a loop on the project's shared 2-core VM (load ~3.6 from other work):
  about 9 us for ``fd.types[N]`` (one readlink, then a stat or a getxattr for files and
  sockets) and 15-19 us per open descriptor for the whole list (0.13 ms for a process with
  7 descriptors, 2 ms for one with 127).

Types carry Falco's names.  A socket's family comes from the ``system.sockprotoname`` extended
attribute of its /proc link (the kernel's protocol name: ``TCP``, ``UDPv6``, ``UNIX``...), one
system call, no walk of /proc/net tables.  The list has each type once, highest descriptor
first (the order Falco's own tests show).
"""

from __future__ import annotations

import os
import stat

from sysward.events.model import Event

#: anon_inode:<name> -> type (the name the kernel gives each kind of anonymous inode)
_ANON: dict[str, str] = {
    "[eventfd]": "event", "[signalfd]": "signalfd", "[eventpoll]": "eventpoll",
    "inotify": "inotify", "[timerfd]": "timerfd", "[userfaultfd]": "userfaultfd",
    "[io_uring]": "io_uring", "[pidfd]": "pidfd",
}
#: sk_prot->name of IPv4 protocols (the IPv6 ones are these names with "v6")
_INET = frozenset({"TCP", "UDP", "UDP-Lite", "UDPLITE", "RAW", "PING", "MPTCP", "SCTP", "DCCP",
                   "L2TP/IP", "SMC"})
_XATTR = "system.sockprotoname"


def socket_type(protocol: str) -> str:
    """Falco's type of a socket from the kernel's protocol name."""
    if protocol.startswith("UNIX"):
        return "unix"
    if protocol == "NETLINK":
        return "netlink"
    if protocol.endswith("v6"):
        return "ipv6" if protocol[:-2] in _INET else "unknown"
    if protocol in _INET:
        return "ipv4"
    return "unknown"


def classify(link: str, path: str) -> str:
    """The type of the descriptor whose /proc link reads ``link`` (``path`` is the link)."""
    if link.startswith("/"):
        if link.startswith("/memfd:"):
            return "memfd"
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return "file"  # closed meanwhile, or a deleted file: it was a path
        return "directory" if stat.S_ISDIR(mode) else "file"
    kind, _, rest = link.partition(":")
    if kind == "socket":
        try:
            proto = os.getxattr(path, _XATTR).decode("ascii", "replace").rstrip("\0")
        except OSError:
            return "unknown"
        return socket_type(proto)
    if kind == "pipe":
        return "pipe"
    if kind == "anon_inode":
        if rest.startswith("bpf"):  # bpf-map, bpf-prog, bpf_link, bpf_iter...
            return "bpf"
        return _ANON.get(rest, "unknown")
    if kind == "pidfd":
        return "pidfd"
    # nsfs ("net:[4026531840]") and the like: files a process opened by path
    return "file"


class ProcFdTypes:
    """The one reader enrichment gives the live processes (``Process.fds``)."""

    __slots__ = ("proc_root", "reads", "_key", "_all")

    def __init__(self, proc_root: str = "/proc") -> None:
        self.proc_root = proc_root
        self.reads = 0  # whole-table reads (for the docs' cost figure and tests)
        self._key: tuple[int, int, int] = (-1, -1, -1)
        self._all: tuple[str, ...] | None = None

    def fd_types(self, event: Event, fd: int | None) -> tuple[str, ...] | None:
        # the thread's own table: a thread may have unshared it, and a leader that exited
        # before its threads shows none
        tid = event.tid or event.pid
        if fd is not None:
            return self._one(tid, event.pid, fd)
        key = (event.num, event.ts, tid)
        if key != self._key:  # once per event, whatever number of rules read it
            self._key = key
            self._all = self._read_all(tid, event.pid)
        return self._all

    def _one(self, tid: int, pid: int, fd: int) -> tuple[str, ...] | None:
        for task in (tid, pid) if tid != pid else (pid,):
            path = f"{self.proc_root}/{task}/fd/{fd}"
            try:
                link = os.readlink(path)
            except FileNotFoundError:
                if os.path.isdir(f"{self.proc_root}/{task}/fd"):
                    return None  # the process lives; that descriptor is not open
                continue
            except OSError:
                continue
            return (classify(link, path),)
        return None

    def _read_all(self, tid: int, pid: int) -> tuple[str, ...] | None:
        for task in (tid, pid) if tid != pid else (pid,):
            base = f"{self.proc_root}/{task}/fd"
            try:
                names = os.listdir(base)
            except OSError:
                continue
            self.reads += 1
            seen: dict[str, None] = {}
            for name in sorted(names, key=int, reverse=True):
                path = f"{base}/{name}"
                try:
                    link = os.readlink(path)
                except OSError:
                    continue  # closed since the listing
                seen.setdefault(classify(link, path), None)
            return tuple(seen)
        return None
