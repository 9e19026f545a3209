"""``proc.stdin.*``, ``proc.stdout.*``, ``proc.stderr.*`` and the exec-time facts of the exe.

The kernel reads fds 0..2 of the new image at every exec (type, inode, device number, the
addresses of the first socket among them) and checks the executable against the inodes
opened for writing since the sensors were loaded (bpf/sysward.bpf.c: put_stdio,
exe_flags_of).  An exec event reads them from its own arguments; any other event of the
process reads what its last exec saw (``Process.stdio``, inherited at fork: a later dup2
onto 0..2 without an exec is not seen).

Falco's names: proc.stdin.type / proc.stdout.type / proc.stderr.type take fd.type's values
(``file`` for regular files and devices, ttys and /dev/null included; ``pipe``, ``ipv4``,
``ipv6``, ``unix``, ``netlink``, ``directory``, ``unknown``); proc.std*.name is the pipe
(``pipe:[INODE]``), the socket's tuple, or the device (``/dev/pts/3``, ``/dev/null``); the
path of a regular file is not captured.  proc.is_exe_writable is Falco's.

sysward's own (no Falco equivalent): proc.stdin.writer.* (the process that exec'd with this
stdin pipe as its stdout), proc.stdout.reader.* (the one that exec'd with this stdout pipe
as its stdin), proc.exe_written and proc.exe_writer (the executable was opened for writing
since the agent started, and by which comm).  See enrich/pipes.py for why a pipeline is
linked from whichever side exec'd second.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sysward.events.model import Event, Process
from sysward.events.types import ExeFlag
from sysward.rules.fieldsets._events import EXEC_TYPES
from sysward.rules.fieldsets.proc import exe_flag
from sysward.rules.fieldtypes import Extractor, FieldDef, FieldType, simple

S, N, B = FieldType.STRING, FieldType.INT, FieldType.BOOL

#: the fd_type character the kernel reports -> Falco's fd.type value (devices are files)
STDIO_TYPES = {
    "f": "file", "c": "file", "b": "file", "d": "directory", "p": "pipe", "4": "ipv4",
    "6": "ipv6", "u": "unix", "n": "netlink",
}
_EXE_WRITABLE = int(ExeFlag.EXE_WRITABLE)
_EXE_WRITTEN = int(ExeFlag.EXE_WRITTEN)
#: Unix98 pseudo-terminal slaves: majors 136..143, /dev/pts/N
_PTS_MAJORS = range(136, 144)


def stdio_of(e: Event) -> list[dict[str, Any] | None] | None:
    """fds 0..2 of the event's process: the exec's own record, else its last exec's."""
    if e.type in EXEC_TYPES:
        stdio = e.args.get("stdio")
        if isinstance(stdio, list):
            return stdio
    p = e.proc
    return p.stdio if p is not None else None


def _entry(e: Event, fd: int) -> dict[str, Any] | None:
    stdio = stdio_of(e)
    if not stdio or fd >= len(stdio):
        return None
    entry = stdio[fd]
    return entry if isinstance(entry, dict) else None


def _type(fd: int) -> Extractor:
    def extract(e: Event) -> str | None:
        entry = _entry(e, fd)
        if entry is None:
            return None
        return STDIO_TYPES.get(str(entry.get("typechar", "")), "unknown")

    return extract


@lru_cache(maxsize=1)
def _dev_names() -> dict[int, str]:
    """Device number -> /dev/NAME of the devices directly in /dev (read once)."""
    out: dict[int, str] = {}
    try:
        with os.scandir("/dev") as it:
            for d in it:
                try:
                    st = d.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_rdev and (st.st_mode & 0o170000) in (0o020000, 0o060000):
                    out.setdefault(st.st_rdev, d.path)
    except OSError:
        pass
    return out


def device_name(rdev: int) -> str | None:
    major = os.major(rdev)
    if major in _PTS_MAJORS:
        return f"/dev/pts/{(major - 136) * 256 + os.minor(rdev)}"
    return _dev_names().get(rdev)


def _fmt(addr: Any, port: Any) -> str:
    text = str(addr)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _name(fd: int) -> Extractor:
    def extract(e: Event) -> str | None:
        entry = _entry(e, fd)
        if entry is None:
            return None
        char = entry.get("typechar")
        if char == "p":
            return f"pipe:[{entry.get('ino', 0)}]"
        if char in ("c", "b"):
            rdev = entry.get("rdev")
            return device_name(rdev) if isinstance(rdev, int) and rdev else None
        if char in ("4", "6") and "addr" in entry:
            local = _fmt(entry.get("saddr"), entry.get("sport"))
            peer = _fmt(entry.get("addr"), entry.get("port"))
            sport, port = entry.get("sport"), entry.get("port")
            # the lower port is taken as the server's, as for a dup (who connected is
            # not recorded): client->server
            if isinstance(sport, int) and isinstance(port, int) and sport < port:
                return f"{peer}->{local}"
            return f"{local}->{peer}"
        return None

    return extract


# --- the other end of a pipe ------------------------------------------------------------------

def _cmdline(p: Process) -> str | None:
    if not p.comm:
        return None
    return p.comm + " " + " ".join(p.argv[1:]) if len(p.argv) > 1 else p.comm


_OF: dict[str, Callable[[Process], Any]] = {
    "name": lambda p: p.comm or None,
    "exepath": lambda p: p.exepath or None,
    "cmdline": _cmdline,
    "pid": lambda p: p.pid or None,
}


def _peer(attr: str, what: str) -> Extractor:
    of = _OF[what]

    def extract(e: Event) -> Any:
        p = e.proc
        peer = getattr(p, attr) if p is not None else None
        return None if peer is None else of(peer)

    return extract


# --- the executable -----------------------------------------------------------------------------

def _exe_writer(e: Event) -> str | None:
    if e.type not in EXEC_TYPES:
        return None
    writer = e.args.get("exe_writer")
    return writer if isinstance(writer, str) and writer else None


_K = "the exec's record (fds 0..2 read by the kernel at exec); other events: the last exec's"
_W = ("sysward's own: a process that exec'd with this pipe as its stdout, known when it "
      "exec'd before this process (else see proc.stdout.reader.* on its exec)")
_R = ("sysward's own: a process that exec'd with this pipe as its stdin, known when it "
      "exec'd before this process (else see proc.stdin.writer.* on its exec)")
_X = "the exec's record (kernel), else the process's last exec"

FIELDS: list[FieldDef] = [
    *(FieldDef(f"proc.{std}.type", S, f"Type of fd {fd} ({std}) as fd.type names it: file "
               "(regular files and devices, ttys included), pipe, ipv4, ipv6, unix, netlink, "
               "directory, unknown.", simple(_type(fd)), availability=_K)
      for fd, std in enumerate(("stdin", "stdout", "stderr"))),
    *(FieldDef(f"proc.{std}.name", S, f"Name of fd {fd} ({std}): pipe:[INODE], the socket's "
               "client:port->server:port, or the device (/dev/pts/N, /dev/null); missing "
               "for regular files and unix sockets.", simple(_name(fd)), availability=_K)
      for fd, std in enumerate(("stdin", "stdout", "stderr"))),
    *(FieldDef(f"proc.stdin.writer.{what}", N if what == "pid" else S,
               f"sysward: {desc} of the process writing this process's stdin pipe.",
               simple(_peer("stdin_writer", what)), availability=_W)
      for what, desc in (("name", "Name"), ("exepath", "Executable path"),
                         ("cmdline", "Command line (name + args)"), ("pid", "Pid"))),
    *(FieldDef(f"proc.stdout.reader.{what}", N if what == "pid" else S,
               f"sysward: {desc} of the process reading this process's stdout pipe.",
               simple(_peer("stdout_reader", what)), availability=_R)
      for what, desc in (("name", "Name"), ("exepath", "Executable path"),
                         ("cmdline", "Command line (name + args)"), ("pid", "Pid"))),
    FieldDef("proc.is_exe_writable", B, "True when the executable is writable by the "
             "process's user (real uid and gid; root unless the file system is read-only "
             "or the file immutable; supplementary groups are not looked at).",
             simple(exe_flag(_EXE_WRITABLE)), availability=_X),
    FieldDef("proc.exe_written", B, "sysward: true when the executable was opened for "
             "writing (a regular file, open/openat/openat2/creat) since the agent started: "
             "a file dropped and then run.  For a script (#!) the executable is its "
             "interpreter.", simple(exe_flag(_EXE_WRITTEN)),
             availability=_X + "; bounded (an LRU of 8192 inodes in the kernel)"),
    FieldDef("proc.exe_writer", S, "sysward: name (comm) of the last process that opened "
             "the executable for writing, when proc.exe_written.", simple(_exe_writer),
             availability="exec events (the kernel's record)"),
]
