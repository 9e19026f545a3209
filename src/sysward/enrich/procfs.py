"""Read one process's facts from /proc/<pid> into a Process.

Used to seed the process table at start and on a table miss while running live; never on
the per-event path.  Every read tolerates the process vanishing half-way (it may exit at any
moment): a missing file leaves the field at its default, a missing /proc/<pid>/stat means the
process is gone and ``read`` returns None.
"""

from __future__ import annotations

import os
import time

from sysward.enrich.containers import pick_cgroup
from sysward.events.model import EXE_DELETED, EXE_FROM_MEMFD, NO_LOGINUID, Process

_DELETED_SUFFIX = " (deleted)"


def boot_time_ns() -> int:
    """Wall-clock time of boot in ns, from CLOCK_BOOTTIME (finer than /proc/stat's btime)."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def exe_link_flags(link: str) -> tuple[str, int]:
    """Split the text of /proc/<pid>/exe into (path, EXE_* flags)."""
    flags = 0
    if link.endswith(_DELETED_SUFFIX):
        link = link[: -len(_DELETED_SUFFIX)]
        flags |= EXE_DELETED
    if link.startswith("/memfd:"):
        flags |= EXE_FROM_MEMFD
    return link, flags


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _ns_inode(path: str) -> int:
    # "pid:[4026531836]"
    link = _readlink(path)
    lb = link.find("[")
    return int(link[lb + 1 : -1]) if lb >= 0 and link.endswith("]") else 0


class ProcReader:
    def __init__(self, proc_root: str = "/proc") -> None:
        self.proc_root = proc_root
        self.boot_ns = boot_time_ns()
        self.tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")

    def pids(self) -> list[int]:
        try:
            names = os.listdir(self.proc_root)
        except OSError:
            return []
        return [int(n) for n in names if n.isdigit()]

    def read_comm(self, pid: int) -> str | None:
        """The current task name of ``pid``, or None when it is gone."""
        raw = _read(f"{self.proc_root}/{pid}/comm")
        return raw.rstrip(b"\n").decode("utf-8", "replace") if raw else None

    def read(self, pid: int) -> Process | None:
        base = f"{self.proc_root}/{pid}"
        stat = _read(f"{base}/stat")
        if stat is None:
            return None
        text = stat.decode("utf-8", "replace")
        # comm is in parentheses and may itself contain ") " — split at the LAST ')'
        lp, rp = text.find("("), text.rfind(")")
        if lp < 0 or rp < 0:
            return None
        rest = text[rp + 2 :].split()
        if len(rest) < 20:
            return None
        proc = Process(
            pid=pid,
            ppid=int(rest[1]),
            comm=text[lp + 1 : rp],
            pgid=int(rest[2]),
            sid=int(rest[3]),
            tty=int(rest[4]),
            start_time=self.boot_ns + int(rest[19]) * self.tick_ns,
        )
        status = _read(f"{base}/status")
        if status is not None:
            for line in status.decode("utf-8", "replace").splitlines():
                key, _, value = line.partition(":")
                if key == "Uid":
                    ids = value.split()
                    proc.uid, proc.euid = int(ids[0]), int(ids[1])
                elif key == "Gid":
                    ids = value.split()
                    proc.gid, proc.egid = int(ids[0]), int(ids[1])
                elif key == "CapInh":
                    proc.cap_inheritable = int(value, 16)
                elif key == "CapPrm":
                    proc.cap_permitted = int(value, 16)
                elif key == "CapEff":
                    proc.cap_effective = int(value, 16)
                    break  # the fields we want all come before CapEff's successors
        cmdline = _read(f"{base}/cmdline")
        if cmdline:
            proc.argv = cmdline.decode("utf-8", "replace").split("\0")
            if proc.argv and proc.argv[-1] == "":
                proc.argv.pop()
        proc.exepath, proc.exe_flags = exe_link_flags(_readlink(f"{base}/exe"))
        cwd = _readlink(f"{base}/cwd")
        proc.cwd = cwd[: -len(_DELETED_SUFFIX)] if cwd.endswith(_DELETED_SUFFIX) else cwd
        login = _read(f"{base}/loginuid")
        proc.loginuid = int(login) if login and login.strip().isdigit() else NO_LOGINUID
        cgroup = _read(f"{base}/cgroup")
        if cgroup:
            proc.cgroup = pick_cgroup(cgroup.decode("utf-8", "replace"))
        proc.pidns = _ns_inode(f"{base}/ns/pid")
        proc.mntns = _ns_inode(f"{base}/ns/mnt")
        return proc
