"""The event table: every event type the sensors report, and the wire layouts behind them.

This module mirrors ``bpf/abi.h`` (the one definition of the wire format).  ``Layout`` lists
the fields of one C struct in order with their ``struct`` codes; ``EVENT_TYPES`` gives each
event type its id, Falco name, family, payload layout and the names its arguments get in
``Event.args``.  The decoder is driven by this table alone, and tests/kernel/test_abi.py checks
the layouts and ids against the BTF of the compiled BPF object.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from sysward.errors import ConfigError


@dataclass(frozen=True)
class Layout:
    """One C struct of bpf/abi.h: (field name, struct code) in declaration order.

    The codes are little-endian standard sizes without alignment ("<"): abi.h pads by hand with
    explicit fields, so the Python offsets are the C offsets.
    """

    name: str
    fields: tuple[tuple[str, str], ...]
    struct: struct.Struct = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "struct", struct.Struct("<" + "".join(c for _, c in self.fields)))

    @property
    def size(self) -> int:
        return self.struct.size

    def offsets(self) -> dict[str, tuple[int, int]]:
        """field name -> (byte offset, byte size)"""
        out: dict[str, tuple[int, int]] = {}
        off = 0
        for name, code in self.fields:
            size = struct.calcsize("<" + code)
            out[name] = (off, size)
            off += size
        return out

    def index(self, name: str) -> int:
        return [n for n, _ in self.fields].index(name)


HEADER = Layout("sw_header", (
    ("ts", "Q"), ("cgroup_id", "Q"), ("start_time", "Q"), ("res", "q"), ("size", "I"),
    ("type", "H"), ("cpu", "H"), ("pid", "I"), ("tid", "I"), ("ppid", "I"), ("uid", "I"),
    ("gid", "I"), ("euid", "I"), ("egid", "I"), ("loginuid", "I"), ("pidns", "I"),
    ("mntns", "I"), ("tty", "I"), ("flags", "I"), ("comm", "16s"),
))
INTS = Layout("sw_ints", (("i0", "q"), ("i1", "q"), ("i2", "q"), ("i3", "q")))
STRS = Layout("sw_strs", (
    ("i0", "q"), ("i1", "q"), ("i2", "q"),
    ("s0_name_len", "H"), ("s0_dir_len", "H"), ("s1_name_len", "H"), ("s1_dir_len", "H"),
    ("s2_name_len", "H"), ("s2_dir_len", "H"), ("pad", "I"),
))
SOCK = Layout("sw_sock", (
    ("fd", "q"), ("i1", "q"), ("i2", "q"), ("addr", "16s"), ("saddr", "16s"),
    ("family", "H"), ("port", "H"), ("sport", "H"), ("sotype", "H"), ("proto", "H"),
    ("fd_type", "B"), ("upath_len", "B"), ("pad", "I"), ("upath", "108s"), ("pad2", "I"),
))
EXEC = Layout("sw_exec", (
    ("cap_effective", "Q"), ("cap_permitted", "Q"), ("cap_inheritable", "Q"),
    ("dirfd", "i"), ("flags", "I"), ("exe_flags", "I"),
    ("filename_len", "H"), ("filename_dir_len", "H"), ("argv_len", "H"), ("env_len", "H"),
    ("cwd_len", "H"), ("argv_truncated", "B"), ("env_truncated", "B"),
))
COUNTERS = Layout("sw_counters", (("seen", "Q"), ("filtered", "Q"), ("submitted", "Q"),
                                  ("lost", "Q")))

#: every wire struct, by C name (the ABI test walks this)
LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (HEADER, INTS, STRS, SOCK, EXEC, COUNTERS)}

# sw_header.flags
F_TRUNCATED = 1
F_EXEC_OK = 2

# Bounds of bpf/abi.h (docs/events.md repeats them)
PATH_MAX = 4096
PATH_DEPTH = 48
ARGV_MAX = 4096
ENV_MAX = 2048
ARGC_MAX = 64
RECORD_MAX = 16384

#: keys of a sw_sock payload that a socket event can report, by output name -> sw_sock field
_SOCK_PEER = (("family", "family"), ("addr", "addr"), ("port", "port"))
_SOCK_LOCAL = (("saddr", "saddr"), ("sport", "sport"))


@dataclass(frozen=True)
class EventType:
    """One event type: its wire id, Falco name, payload layout and argument names.

    ``ints`` names the integer slots i0.. of INTS/STRS payloads (None: not reported);
    ``strs`` names the string slots s0.. of STRS payloads; ``sock`` maps output keys to sw_sock
    fields.  ``syscall`` is the tracepoint name when it differs from ``name``.
    """

    id: int
    name: str
    family: str
    layout: Layout
    ints: tuple[str | None, ...] = ()
    strs: tuple[str, ...] = ()
    sock: tuple[tuple[str, str], ...] = ()
    syscall: str | None = None

    @property
    def enum_name(self) -> str:
        """The constant of ``enum sw_event_type`` in abi.h"""
        return "SW_EVT_" + self.name.upper()

    @property
    def programs(self) -> tuple[str, ...]:
        """Names of the BPF programs that report this type.

        One sys_exit program per syscall (it reads the arguments from the saved user
        registers); exec also saves its arguments at entry and watches sched_process_exec.
        """
        if self.name == "procexit":
            return ("sw_sched_exit",)
        sc = self.syscall or self.name
        if self.name in ("execve", "execveat"):
            return (f"sw_enter_{sc}", f"sw_exit_{sc}", "sw_sched_exec")
        return (f"sw_exit_{sc}",)

    @property
    def tracepoints(self) -> tuple[str, ...]:
        """The tracepoints (category/name) those programs attach to."""
        if self.name == "procexit":
            return ("sched/sched_process_exit",)
        sc = self.syscall or self.name
        if self.name in ("execve", "execveat"):
            return (f"syscalls/sys_enter_{sc}", f"syscalls/sys_exit_{sc}",
                    "sched/sched_process_exec")
        return (f"syscalls/sys_exit_{sc}",)


def _t(id_: int, name: str, family: str, layout: Layout, **kw: object) -> EventType:
    return EventType(id_, name, family, layout, **kw)  # type: ignore[arg-type]


_OPEN_INTS: tuple[str | None, ...] = ("dirfd", "flags", "mode")
_CONNECT = (("fd", "fd"), *_SOCK_PEER, *_SOCK_LOCAL, ("sotype", "sotype"), ("proto", "proto"))
_DUP = (("oldfd", "fd"), ("fd_type", "fd_type"), *_SOCK_PEER, *_SOCK_LOCAL)

EVENT_TYPES: tuple[EventType, ...] = (
    _t(1, "execve", "process", EXEC),
    _t(2, "execveat", "process", EXEC),
    _t(3, "clone", "process", INTS, ints=("flags",)),
    _t(4, "clone3", "process", INTS, ints=("flags",)),
    _t(5, "fork", "process", INTS, ints=("flags",)),
    _t(6, "vfork", "process", INTS, ints=("flags",)),
    _t(7, "procexit", "process", INTS, ints=("status", "signal", "core")),
    _t(8, "open", "file", STRS, ints=(None, "flags", "mode"), strs=("name",)),
    _t(9, "openat", "file", STRS, ints=_OPEN_INTS, strs=("name",)),
    _t(10, "openat2", "file", STRS, ints=_OPEN_INTS, strs=("name",)),
    _t(11, "creat", "file", STRS, ints=(None, "flags", "mode"), strs=("name",)),
    _t(12, "unlink", "file", STRS, ints=(None, "dirfd"), strs=("name",)),
    _t(13, "unlinkat", "file", STRS, ints=("flags", "dirfd"), strs=("name",)),
    _t(14, "rename", "file", STRS, ints=("flags",), strs=("oldpath", "newpath")),
    _t(15, "renameat", "file", STRS, ints=("flags",), strs=("oldpath", "newpath")),
    _t(16, "renameat2", "file", STRS, ints=("flags",), strs=("oldpath", "newpath")),
    _t(17, "chmod", "file", STRS, ints=("mode",), strs=("filename",)),
    _t(18, "fchmodat", "file", STRS, ints=("mode",), strs=("filename",)),
    _t(19, "fchmod", "file", STRS, ints=("mode", "fd"), strs=("filename",)),
    _t(20, "mkdir", "file", STRS, ints=("mode",), strs=("path",)),
    _t(21, "mkdirat", "file", STRS, ints=("mode",), strs=("path",)),
    _t(22, "symlink", "file", STRS, strs=("target", "linkpath")),
    _t(23, "symlinkat", "file", STRS, strs=("target", "linkpath")),
    _t(24, "link", "file", STRS, ints=("flags",), strs=("oldpath", "newpath")),
    _t(25, "linkat", "file", STRS, ints=("flags",), strs=("oldpath", "newpath")),
    _t(26, "socket", "network", INTS, ints=("domain", "type", "proto")),
    _t(27, "connect", "network", SOCK, sock=_CONNECT),
    _t(28, "accept", "network", SOCK, sock=(("fd", "fd"), *_SOCK_PEER, *_SOCK_LOCAL)),
    _t(29, "accept4", "network", SOCK,
       sock=(("fd", "fd"), *_SOCK_PEER, *_SOCK_LOCAL, ("flags", "i1"))),
    _t(30, "bind", "network", SOCK, sock=(("fd", "fd"), *_SOCK_PEER)),
    _t(31, "listen", "network", SOCK, sock=(("fd", "fd"), ("backlog", "i1"), *_SOCK_PEER)),
    _t(32, "dup", "file", SOCK, sock=_DUP),
    _t(33, "dup2", "file", SOCK, sock=(*_DUP, ("newfd", "i1"))),
    _t(34, "dup3", "file", SOCK, sock=(*_DUP, ("newfd", "i1"), ("flags", "i2"))),
    _t(35, "setuid", "privilege", INTS, ints=("uid",)),
    _t(36, "setgid", "privilege", INTS, ints=("gid",)),
    _t(37, "setreuid", "privilege", INTS, ints=("ruid", "euid")),
    _t(38, "setregid", "privilege", INTS, ints=("rgid", "egid")),
    _t(39, "setresuid", "privilege", INTS, ints=("ruid", "euid", "suid")),
    _t(40, "setresgid", "privilege", INTS, ints=("rgid", "egid", "sgid")),
    _t(41, "capset", "privilege", INTS,
       ints=("cap_effective", "cap_permitted", "cap_inheritable")),
    _t(42, "unshare", "isolation", INTS, ints=("flags",)),
    _t(43, "setns", "isolation", INTS, ints=("fd", "nstype")),
    _t(44, "mount", "isolation", STRS, ints=("flags",), strs=("dev", "dir", "type")),
    _t(45, "umount2", "isolation", STRS, ints=("flags",), strs=("name",), syscall="umount"),
    _t(46, "ptrace", "other", INTS, ints=("request", "pid")),
    _t(47, "memfd_create", "other", STRS, ints=("flags",), strs=("name",)),
    _t(48, "bpf", "other", INTS, ints=("cmd",)),
    _t(49, "kill", "other", INTS, ints=("pid", "sig")),
    _t(50, "tgkill", "other", INTS, ints=("pid", "tid", "sig")),
    _t(51, "process_vm_writev", "other", INTS, ints=("pid",)),
    _t(52, "init_module", "other", STRS, strs=("uargs",)),
    _t(53, "finit_module", "other", STRS, ints=("fd", "flags"), strs=("uargs",)),
    _t(54, "chdir", "file", STRS, strs=("path",)),
    _t(55, "fchdir", "file", STRS, ints=("fd",), strs=("path",)),
)

#: one past the highest id (SW_EVT_MAX): the size of the enable and counter maps
EVT_MAX = 56

BY_ID: dict[int, EventType] = {t.id: t for t in EVENT_TYPES}
BY_NAME: dict[str, EventType] = {t.name: t for t in EVENT_TYPES}

#: names accepted by ``--events`` besides single types
GROUPS: dict[str, tuple[str, ...]] = {
    "exec": ("execve", "execveat"),
    "fork": ("clone", "clone3", "fork", "vfork"),
    "exit": ("procexit",),
    "open": ("open", "openat", "openat2", "creat"),
    "unlink": ("unlink", "unlinkat"),
    "rename": ("rename", "renameat", "renameat2"),
    "chmod": ("chmod", "fchmodat", "fchmod"),
    "mkdir": ("mkdir", "mkdirat"),
    "symlink": ("symlink", "symlinkat"),
    "link": ("link", "linkat"),
    "accept": ("accept", "accept4"),
    "dup": ("dup", "dup2", "dup3"),
    "setuid": ("setuid", "setreuid", "setresuid"),
    "setgid": ("setgid", "setregid", "setresgid"),
    "umount": ("umount2",),
    "module": ("init_module", "finit_module"),
    "chdir": ("chdir", "fchdir"),
    "signal": ("kill", "tgkill"),
}
for _fam in sorted({t.family for t in EVENT_TYPES}):
    GROUPS[_fam] = tuple(t.name for t in EVENT_TYPES if t.family == _fam)
GROUPS["all"] = tuple(t.name for t in EVENT_TYPES)


def resolve_types(spec: str | Iterable[str]) -> list[EventType]:
    """Event types named by ``spec`` ("exec,open,connect", groups or single types), in id order.

    Unknown names raise one ConfigError that lists the valid ones.
    """
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    wanted: set[str] = set()
    unknown: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name in GROUPS:
            wanted.update(GROUPS[name])
        elif name in BY_NAME:
            wanted.add(name)
        else:
            unknown.append(raw.strip())
    if unknown:
        raise ConfigError(
            f"unknown event type(s) {', '.join(unknown)}; valid groups: "
            f"{', '.join(sorted(GROUPS))}; valid types: {', '.join(BY_NAME)}."
        )
    if not wanted:
        raise ConfigError("no event types given; use --events all or a list such as exec,open.")
    return [t for t in EVENT_TYPES if t.name in wanted]
