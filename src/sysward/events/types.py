"""The event table: every event type the sensors report, and the wire layouts behind them.

This module mirrors ``bpf/abi.h`` (the one definition of the wire format): its structs as
``Layout``s, its constant enums as IntEnum/IntFlag mirrors (``ENUMS``).  ``EVENT_TYPES`` gives
each event type its id, Falco name, family, payload layout, the names its arguments get in
``Event.args``, and the facts every other list of event types is derived from (result is a
new fd, enforcement hook class, kernel option the tracepoint depends on, Falco aliases).  The
decoder is driven by this table alone, and tests/unit/test_abi.py checks the layouts, ids and
constants against the BTF of the compiled BPF object; tests/unit/test_event_table.py checks
that no other module of src/ enumerates event types by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from sysward.errors import ConfigError
from sysward.events.layout import AbiEnum, Layout

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
    ("fd_ino", "3Q"), ("fd_rdev", "3I"), ("fd_type", "3s"), ("sock_fd", "B"),
    ("sock_addr", "16s"), ("sock_saddr", "16s"), ("sock_family", "H"), ("sock_port", "H"),
    ("sock_sport", "H"), ("pad", "H"), ("writer_comm", "16s"),
))
COUNTERS = Layout("sw_counters", (("seen", "Q"), ("filtered", "Q"), ("submitted", "Q"),
                                  ("lost", "Q"), ("rejected", "Q"),
                                  ("discarded", "Q")))

#: every wire struct, by C name (the ABI test walks this)
LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (HEADER, INTS, STRS, SOCK, EXEC, COUNTERS)}


class Bound(IntEnum):
    """enum sw_bound: the bounds of bpf/abi.h (docs/events.md repeats them)."""

    PATH_MAX = 4096
    NAME_MAX = 256
    PATH_DEPTH = 48
    ARGV_MAX = 4096
    ENV_MAX = 2048
    ARGC_MAX = 64
    STR_MAX = 256
    UNIX_PATH_MAX = 108
    RECORD_MAX = 16384
    COMM_LEN = 16


class HeaderFlag(IntFlag):
    """enum sw_header_flag: bits of sw_header.flags."""

    TRUNCATED = 1
    EXEC_OK = 2
    PF_REJECT = 4  # kernel.prefilter audit: the prefilter would have dropped the event
    LEADER_ALIVE = 8  # the thread group's leader has not begun to exit


class HeaderThreads(IntEnum):
    """enum sw_header_threads: the live-thread count in the high half of sw_header.flags."""

    THREADS_SHIFT = 16
    THREADS_MAX = 0xFFFF


class ExeFlag(IntFlag):
    """enum sw_exe_flag: bits of sw_exec.exe_flags, named as the rules render them."""

    EXE_FROM_MEMFD = 1
    EXE_UPPER_LAYER = 2
    EXE_DELETED = 4
    EXE_WRITABLE = 8  # writable by the task's user (real uid/gid)
    EXE_WRITTEN = 16  # opened for writing since the sensors were loaded (sysward's own)


class StdioBound(IntEnum):
    """enum sw_stdio_bound: fds 0..2 in sw_exec, and its sock_fd when none is a socket."""

    STDIO_FDS = 3
    NO_SOCK_FD = 255


class KConst(IntEnum):
    """enum sw_kconst: kernel constants the sensors decide on (ioctl requests, prctl options)."""

    FS_IOC_SETFLAGS = 0x40086602
    FS_IOC_FSSETXATTR = 0x401C5820
    PR_SET_NAME = 15
    PR_GET_NAME = 16
    IOCTL_OLD_KNOWN = 0x40000000


#: the ioctl requests the sensor reports (every other one is dropped in the kernel)
IOCTL_REQUESTS = (int(KConst.FS_IOC_SETFLAGS), int(KConst.FS_IOC_FSSETXATTR))


class FilterFlag(IntFlag):
    """enum sw_filter_flag: bits of the sensors' load-time global filter_flags."""

    COMMS = 1
    HOST = 2
    CGROUPS = 4  # the scope_cgroups map: out-of-scope pods (filters.namespaces / labels)


F_TRUNCATED = int(HeaderFlag.TRUNCATED)
#: where the decoder finds the thread counts in sw_header.flags
THREADS_SHIFT = int(HeaderThreads.THREADS_SHIFT)
LEADER_ALIVE_SHIFT = int(HeaderFlag.LEADER_ALIVE).bit_length() - 1
F_EXEC_OK = int(HeaderFlag.EXEC_OK)
PATH_MAX = int(Bound.PATH_MAX)
PATH_DEPTH = int(Bound.PATH_DEPTH)
ARGV_MAX = int(Bound.ARGV_MAX)
ENV_MAX = int(Bound.ENV_MAX)
ARGC_MAX = int(Bound.ARGC_MAX)
RECORD_MAX = int(Bound.RECORD_MAX)
COMM_LEN = int(Bound.COMM_LEN)


def comm_ok(comm: str) -> bool:
    """Whether ``comm`` can be a task name: 1 to COMM_LEN - 1 bytes, as the kernel keeps it
    (the one check of filters.ignore_comms, in the config and in the sensor)."""
    return 0 < len(comm.encode()) < COMM_LEN


#: keys of a sw_sock payload that a socket event can report, by output name -> sw_sock field
_SOCK_PEER = (("family", "family"), ("addr", "addr"), ("port", "port"))
_SOCK_LOCAL = (("saddr", "saddr"), ("sport", "sport"))


@dataclass(frozen=True)
class EventType:
    """One event type: its wire id, Falco name, payload layout and argument names.

    ``ints`` names the integer slots i0.. of INTS/STRS payloads (None: not reported);
    ``strs`` names the string slots s0.. of STRS payloads; ``sock`` maps output keys to sw_sock
    fields.  ``syscall`` is the tracepoint name when it differs from ``name``.  ``res_fd``: a
    successful call returns a new file descriptor.  ``enforce``: the enforcement hook class
    (a member name of sysward.enforce.abi.EnfType) that can stop this type, None when none
    can.  ``kernel_option``: the kernel build option without which the tracepoint does not
    exist and there is nothing to watch.  ``aliases``: other Falco names for this type.
    ``res_arg``: Falco's name for the result among the event's parameters (``evt.arg.fd`` of
    an open is its result).  ``proctable``: the process table needs these events whatever
    the rules say (ancestry, exe, cwd, exits).  ``flags``: which flag set ``args["flags"]``
    holds (the rules render it by that name: "open_flags" -> O_RDONLY|O_CLOEXEC...).
    ``sock_role``: which end of a connection the caller is ("client": connect, "server":
    accept, "bound": bind/listen, which know only the local end; None: not fixed by the type).
    ``fd_type``: Falco's fd.type character of the descriptor the event names, when the type
    alone decides it.  ``path0``: the first string slot is a path argument the sensor makes
    absolute against the dirfd or cwd (put_path_arg), which the kernel prefilter compares.
    ``state``: enrichment updates the process from it (ids, capabilities), so when it is
    attached every event of it must reach user space (as for ``proctable`` types).
    ``entry``: an entry program keeps what the exit can no longer see (ioctl: the attribute
    flags before the call).  ``fd_path``: the string argument that holds the path of the
    descriptor ``args["fd"]`` (fd.name of the event).
    """

    id: int
    name: str
    family: str
    layout: Layout
    ints: tuple[str | None, ...] = ()
    strs: tuple[str, ...] = ()
    sock: tuple[tuple[str, str], ...] = ()
    syscall: str | None = None
    res_fd: bool = False
    enforce: str | None = None
    kernel_option: str | None = None
    aliases: tuple[str, ...] = ()
    res_arg: str | None = None
    proctable: bool = False
    flags: str | None = None
    sock_role: str | None = None
    fd_type: str | None = None
    path0: bool = False
    state: bool = False
    entry: bool = False
    fd_path: str | None = None

    @property
    def arg_names(self) -> tuple[str, ...]:
        """Every key this type puts in ``Event.args`` from its payload slots."""
        return (*(n for n in self.ints if n), *self.strs, *(k for k, _ in self.sock))

    @property
    def sockaddr(self) -> bool:
        """Its args describe a socket address (family/addr/port[/saddr/sport])."""
        return self.layout is SOCK

    @property
    def arg_fd(self) -> bool:
        """It names an existing descriptor in ``args["fd"]`` (not its own result)."""
        return "fd" in self.arg_names and not self.res_fd

    @property
    def syscall_name(self) -> str | None:
        """The syscall behind the type (its tracepoints' name); None for procexit."""
        return None if self.name == "procexit" else self.syscall or self.name

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
        if self.layout is EXEC:
            return (f"sw_enter_{sc}", f"sw_exit_{sc}", "sw_sched_exec")
        if self.entry:
            return (f"sw_enter_{sc}", f"sw_exit_{sc}")
        return (f"sw_exit_{sc}",)

    @property
    def tracepoints(self) -> tuple[str, ...]:
        """The tracepoints (category/name) those programs attach to."""
        if self.name == "procexit":
            return ("sched/sched_process_exit",)
        sc = self.syscall or self.name
        if self.layout is EXEC:
            return (f"syscalls/sys_enter_{sc}", f"syscalls/sys_exit_{sc}",
                    "sched/sched_process_exec")
        if self.entry:
            return (f"syscalls/sys_enter_{sc}", f"syscalls/sys_exit_{sc}")
        return (f"syscalls/sys_exit_{sc}",)


def _t(id_: int, name: str, family: str, layout: Layout, **kw: object) -> EventType:
    return EventType(id_, name, family, layout, **kw)  # type: ignore[arg-type]


_OPEN_INTS: tuple[str | None, ...] = ("dirfd", "flags", "mode")
_CONNECT = (("fd", "fd"), *_SOCK_PEER, *_SOCK_LOCAL, ("sotype", "sotype"), ("proto", "proto"))
_DUP = (("oldfd", "fd"), ("fd_type", "fd_type"), *_SOCK_PEER, *_SOCK_LOCAL)
# facts shared by the members of one family of syscalls
_EXEC: dict[str, object] = {"proctable": True, "enforce": "EXEC", "flags": "exe_flags"}
_FORK: dict[str, object] = {"proctable": True, "flags": "clone_flags"}
_OPEN: dict[str, object] = {"res_fd": True, "res_arg": "fd", "enforce": "OPEN",
                            "flags": "open_flags", "path0": True}
_PATH0: dict[str, object] = {"path0": True}
_ACCEPT: dict[str, object] = {"res_fd": True, "res_arg": "fd", "sock_role": "server"}
_BOUND: dict[str, object] = {"sock_role": "bound"}
_SETUID: dict[str, object] = {"enforce": "SETUID", "state": True}
_SETGID: dict[str, object] = {"enforce": "SETGID", "state": True}
_MODULE: dict[str, object] = {"enforce": "MODULE", "kernel_option": "CONFIG_MODULES"}
_CHDIR: dict[str, object] = {"proctable": True}
_XATTR = ("path", "name")
_FXATTR: dict[str, object] = {"fd_path": "path"}

EVENT_TYPES: tuple[EventType, ...] = (
    _t(1, "execve", "process", EXEC, **_EXEC),
    _t(2, "execveat", "process", EXEC, **_EXEC),
    _t(3, "clone", "process", INTS, ints=("flags",), **_FORK),
    _t(4, "clone3", "process", INTS, ints=("flags",), **_FORK),
    _t(5, "fork", "process", INTS, ints=("flags",), **_FORK),
    _t(6, "vfork", "process", INTS, ints=("flags",), **_FORK),
    _t(7, "procexit", "process", INTS, ints=("status", "signal", "core"), proctable=True),
    _t(8, "open", "file", STRS, ints=(None, "flags", "mode"), strs=("name",), **_OPEN),
    _t(9, "openat", "file", STRS, ints=_OPEN_INTS, strs=("name",), **_OPEN),
    _t(10, "openat2", "file", STRS, ints=_OPEN_INTS, strs=("name",), **_OPEN),
    _t(11, "creat", "file", STRS, ints=(None, "flags", "mode"), strs=("name",), **_OPEN),
    _t(12, "unlink", "file", STRS, ints=(None, "dirfd"), strs=("name",), **_PATH0),
    _t(13, "unlinkat", "file", STRS, ints=("flags", "dirfd"), strs=("name",), flags="at_flags",
       **_PATH0),
    _t(14, "rename", "file", STRS, ints=("flags",), strs=("oldpath", "newpath"), **_PATH0),
    _t(15, "renameat", "file", STRS, ints=("flags",), strs=("oldpath", "newpath"), **_PATH0),
    _t(16, "renameat2", "file", STRS, ints=("flags",), strs=("oldpath", "newpath"),
       flags="rename_flags", **_PATH0),
    _t(17, "chmod", "file", STRS, ints=("mode",), strs=("filename",), **_PATH0),
    _t(18, "fchmodat", "file", STRS, ints=("mode",), strs=("filename",), **_PATH0),
    _t(19, "fchmod", "file", STRS, ints=("mode", "fd"), strs=("filename",), fd_type="f",
       fd_path="filename"),
    _t(20, "mkdir", "file", STRS, ints=("mode",), strs=("path",), **_PATH0),
    _t(21, "mkdirat", "file", STRS, ints=("mode",), strs=("path",), **_PATH0),
    _t(22, "symlink", "file", STRS, strs=("target", "linkpath")),
    _t(23, "symlinkat", "file", STRS, strs=("target", "linkpath")),
    _t(24, "link", "file", STRS, ints=("flags",), strs=("oldpath", "newpath"), **_PATH0),
    _t(25, "linkat", "file", STRS, ints=("flags",), strs=("oldpath", "newpath"),
       flags="at_flags", **_PATH0),
    _t(26, "socket", "network", INTS, ints=("domain", "type", "proto"), res_fd=True,
       res_arg="fd"),
    _t(27, "connect", "network", SOCK, sock=_CONNECT, enforce="CONNECT", sock_role="client"),
    _t(28, "accept", "network", SOCK, sock=(("fd", "fd"), *_SOCK_PEER, *_SOCK_LOCAL), **_ACCEPT),
    _t(29, "accept4", "network", SOCK,
       sock=(("fd", "fd"), *_SOCK_PEER, *_SOCK_LOCAL, ("flags", "i1")), flags="sock_flags",
       **_ACCEPT),
    _t(30, "bind", "network", SOCK, sock=(("fd", "fd"), *_SOCK_PEER), **_BOUND),
    _t(31, "listen", "network", SOCK, sock=(("fd", "fd"), ("backlog", "i1"), *_SOCK_PEER),
       **_BOUND),
    _t(32, "dup", "file", SOCK, sock=_DUP, res_fd=True),
    _t(33, "dup2", "file", SOCK, sock=(*_DUP, ("newfd", "i1")), res_fd=True),
    _t(34, "dup3", "file", SOCK, sock=(*_DUP, ("newfd", "i1"), ("flags", "i2")), res_fd=True,
       flags="dup3_flags"),
    _t(35, "setuid", "privilege", INTS, ints=("uid",), **_SETUID),
    _t(36, "setgid", "privilege", INTS, ints=("gid",), **_SETGID),
    _t(37, "setreuid", "privilege", INTS, ints=("ruid", "euid"), **_SETUID),
    _t(38, "setregid", "privilege", INTS, ints=("rgid", "egid"), **_SETGID),
    _t(39, "setresuid", "privilege", INTS, ints=("ruid", "euid", "suid"), **_SETUID),
    _t(40, "setresgid", "privilege", INTS, ints=("rgid", "egid", "sgid"), **_SETGID),
    _t(41, "capset", "privilege", INTS,
       ints=("cap_effective", "cap_permitted", "cap_inheritable"), enforce="CAPSET",
       state=True),
    _t(42, "unshare", "isolation", INTS, ints=("flags",), enforce="UNSHARE", flags="ns_flags"),
    _t(43, "setns", "isolation", INTS, ints=("fd", "nstype"), enforce="SETNS", fd_type="f"),
    _t(44, "mount", "isolation", STRS, ints=("flags",), strs=("dev", "dir", "type"),
       enforce="MOUNT", flags="mount_flags"),
    _t(45, "umount2", "isolation", STRS, ints=("flags",), strs=("name",), syscall="umount",
       aliases=("umount",), flags="umount_flags", path0=True),
    _t(46, "ptrace", "other", INTS, ints=("request", "pid"), enforce="PTRACE"),
    _t(47, "memfd_create", "other", STRS, ints=("flags",), strs=("name",), res_fd=True,
       res_arg="fd", enforce="MEMFD", flags="memfd_flags", fd_type="f"),
    _t(48, "bpf", "other", INTS, ints=("cmd",), res_arg="fd", enforce="BPF"),
    _t(49, "kill", "other", INTS, ints=("pid", "sig")),
    _t(50, "tgkill", "other", INTS, ints=("pid", "tid", "sig")),
    _t(51, "process_vm_writev", "other", INTS, ints=("pid",), enforce="VMWRITE"),
    _t(52, "init_module", "other", STRS, strs=("uargs",), **_MODULE),
    _t(53, "finit_module", "other", STRS, ints=("fd", "flags"), strs=("uargs",), fd_type="f",
       **_MODULE),
    _t(54, "chdir", "file", STRS, strs=("path",), **_CHDIR),
    _t(55, "fchdir", "file", STRS, ints=("fd",), strs=("path",), fd_type="d", fd_path="path",
       **_CHDIR),
    _t(56, "setxattr", "file", STRS, ints=("flags", "size"), strs=_XATTR, flags="xattr_flags",
       **_PATH0),
    _t(57, "lsetxattr", "file", STRS, ints=("flags", "size"), strs=_XATTR, flags="xattr_flags",
       **_PATH0),
    _t(58, "fsetxattr", "file", STRS, ints=("flags", "size", "fd"), strs=_XATTR,
       flags="xattr_flags", **_FXATTR),
    _t(59, "removexattr", "file", STRS, strs=_XATTR, **_PATH0),
    _t(60, "lremovexattr", "file", STRS, strs=_XATTR, **_PATH0),
    _t(61, "fremovexattr", "file", STRS, ints=(None, None, "fd"), strs=_XATTR, **_FXATTR),
    # i2 packs the new and the old flags (enum sw_kconst); the decoder splits them
    _t(62, "ioctl", "file", STRS, ints=("fd", "request", None), strs=("path",),
       flags="inode_flags", entry=True, fd_path="path"),
    _t(63, "prctl", "process", STRS, ints=("option", "arg2_int"), strs=("arg2_str",)),
)

#: one past the highest id (SW_EVT_MAX): the size of the enable and counter maps
EVT_MAX = 64

BY_ID: dict[int, EventType] = {t.id: t for t in EVENT_TYPES}
BY_NAME: dict[str, EventType] = {t.name: t for t in EVENT_TYPES}
#: every Falco name of a type (its aliases too) -> the type
BY_FALCO_NAME: dict[str, EventType] = {
    **{a: t for t in EVENT_TYPES for a in t.aliases}, **BY_NAME}

#: the constant enums of bpf/abi.h and their mirrors (the ABI test walks this)
ENUMS: tuple[AbiEnum, ...] = (
    AbiEnum("sw_bound", Bound, "SW_"),
    AbiEnum("sw_header_flag", HeaderFlag, "SW_F_"),
    AbiEnum("sw_header_threads", HeaderThreads, "SW_"),
    AbiEnum("sw_exe_flag", ExeFlag, "SW_"),
    AbiEnum("sw_stdio_bound", StdioBound, "SW_"),
    AbiEnum("sw_filter_flag", FilterFlag, "SW_FILTER_"),
    AbiEnum("sw_kconst", KConst, "SW_"),
)

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
    "module": ("init_module", "finit_module"),
    "chdir": ("chdir", "fchdir"),
    "signal": ("kill", "tgkill"),
    "xattr": ("setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr",
              "fremovexattr"),
}
GROUPS.update({alias: (t.name,) for t in EVENT_TYPES for alias in t.aliases})
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
