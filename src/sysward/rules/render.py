"""How raw syscall numbers print in conditions and alerts: Falco's symbolic renderings.

Events carry flags, modes and enums as the integers the kernel saw (docs/events.md).  Falco
compares and prints them symbolically (``evt.arg.flags contains O_TRUNC``, ``PTRACE_ATTACH``,
``AF_PACKET``, ``CAP_SYS_ADMIN``, ``ENOENT``), so the rule engine renders them the same way.

Bit sets render as the names of the bits that are set, joined by ``|``, in a fixed table order
(Falco's order where it has one); bits without a name are dropped, a value with no named bit at
all renders as its decimal number.  Enumerations render as the name, or the number when unknown.
Capabilities render as names separated by spaces, as Falco's ``thread.cap_*`` fields do.

Every table is built once at import; the render functions are small and allocation-light
because output templates call them for every alert and conditions for every matching event.
"""

from __future__ import annotations

import errno as _errno
import os as _os
import signal as _signal
from collections.abc import Callable, Sequence
from functools import lru_cache

from sysward.events.types import ExeFlag, KConst

BitTable = Sequence[tuple[str, int]]


def render_bits(value: int, table: BitTable) -> str:
    """Names of the bit groups of ``table`` fully set in ``value``, ``|``-joined, in table order.

    A matched group's bits are removed before the next entry is tried, so that a wide flag
    listed first hides narrower ones it contains.
    """
    rest = value
    names = []
    for name, bits in table:
        if bits and rest & bits == bits:
            names.append(name)
            rest &= ~bits
    return "|".join(names) if names else str(value)


# --- open(2) flags --------------------------------------------------------------------------
# Host values from the os module: they differ between architectures (O_DIRECTORY on arm64).
_O = {name: getattr(_os, name, 0) for name in (
    "O_LARGEFILE", "O_DIRECTORY", "O_DIRECT", "O_TRUNC", "O_NONBLOCK", "O_EXCL", "O_DSYNC",
    "O_APPEND", "O_CREAT", "O_CLOEXEC", "O_NOFOLLOW", "O_NOATIME", "O_NOCTTY", "O_PATH",
    "O_TMPFILE", "O_SYNC")}
O_ACCMODE = 3
O_WRONLY = 1
O_RDWR = 2
O_CREAT = _O["O_CREAT"] or 0o100
O_DIRECTORY = _O["O_DIRECTORY"] or 0o200000
O_TMPFILE = _O["O_TMPFILE"] or 0o20200000

# Falco's order; the access mode (O_RDONLY is 0, so it is not a bit) is placed where Falco
# lists it, just after O_CREAT.
_OPEN_BEFORE_ACC: BitTable = tuple((n, _O[n]) for n in (
    "O_LARGEFILE", "O_TMPFILE", "O_DIRECTORY", "O_DIRECT", "O_TRUNC", "O_SYNC", "O_NONBLOCK",
    "O_EXCL", "O_DSYNC", "O_APPEND", "O_CREAT") if _O[n])
_OPEN_AFTER_ACC: BitTable = tuple((n, _O[n]) for n in (
    "O_CLOEXEC", "O_NOFOLLOW", "O_NOATIME", "O_NOCTTY", "O_PATH") if _O[n])
_ACC_NAMES = ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_RDWR")


@lru_cache(maxsize=512)
def render_open_flags(flags: int) -> str:
    """``O_WRONLY|O_CREAT|O_TRUNC`` style; the access mode is always named."""
    names: list[str] = []
    rest = flags & ~O_ACCMODE
    for name, bits in _OPEN_BEFORE_ACC:
        if rest & bits == bits:
            names.append(name)
            rest &= ~bits
    names.append(_ACC_NAMES[flags & O_ACCMODE])
    for name, bits in _OPEN_AFTER_ACC:
        if rest & bits == bits:
            names.append(name)
            rest &= ~bits
    return "|".join(names)


def is_open_read(flags: int) -> bool:
    return flags & O_ACCMODE in (0, O_RDWR)


def is_open_write(flags: int) -> bool:
    return flags & O_ACCMODE in (O_WRONLY, O_RDWR)


# --- file modes --------------------------------------------------------------------------
_MODE_BITS: BitTable = (
    ("S_IXOTH", 0o1), ("S_IWOTH", 0o2), ("S_IROTH", 0o4),
    ("S_IXGRP", 0o10), ("S_IWGRP", 0o20), ("S_IRGRP", 0o40),
    ("S_IXUSR", 0o100), ("S_IWUSR", 0o200), ("S_IRUSR", 0o400),
    ("S_ISVTX", 0o1000), ("S_ISGID", 0o2000), ("S_ISUID", 0o4000),
)
MODE_EXEC_BITS = 0o111


@lru_cache(maxsize=256)
def render_file_mode(mode: int) -> str:
    """``S_IRUSR|S_IWUSR|S_ISUID`` style (Falco's rendering of chmod/mkdir/open modes)."""
    return render_bits(mode, _MODE_BITS)


# --- execve exe flags: enum sw_exe_flag of bpf/abi.h, under its names ---------------------------
_EXE_BITS: BitTable = tuple((str(f.name), int(f)) for f in (
    ExeFlag.EXE_WRITABLE, ExeFlag.EXE_UPPER_LAYER, ExeFlag.EXE_FROM_MEMFD,
    ExeFlag.EXE_DELETED, ExeFlag.EXE_WRITTEN))  # Falco's order, then sysward's own


def render_exe_flags(flags: int) -> str:
    return render_bits(flags, _EXE_BITS) if flags else "0"


# --- clone / unshare / setns namespace flags --------------------------------------------------
_CLONE_BITS: BitTable = (
    ("CLONE_FILES", 0x400), ("CLONE_FS", 0x200), ("CLONE_IO", 0x80000000),
    ("CLONE_NEWIPC", 0x8000000), ("CLONE_NEWNET", 0x40000000), ("CLONE_NEWNS", 0x20000),
    ("CLONE_NEWPID", 0x20000000), ("CLONE_NEWUTS", 0x4000000), ("CLONE_PARENT", 0x8000),
    ("CLONE_PARENT_SETTID", 0x100000), ("CLONE_PTRACE", 0x2000), ("CLONE_SIGHAND", 0x800),
    ("CLONE_SYSVSEM", 0x40000), ("CLONE_THREAD", 0x10000), ("CLONE_UNTRACED", 0x800000),
    ("CLONE_VM", 0x100), ("CLONE_NEWUSER", 0x10000000), ("CLONE_CHILD_CLEARTID", 0x200000),
    ("CLONE_CHILD_SETTID", 0x1000000), ("CLONE_SETTLS", 0x80000), ("CLONE_VFORK", 0x4000),
    ("CLONE_NEWCGROUP", 0x2000000), ("CLONE_PIDFD", 0x1000),
)
_NEWTIME = ("CLONE_NEWTIME", 0x80)
#: unshare(2) / setns(2): the clone table where 0x80 is CLONE_NEWTIME (the kernel prefilter
#: tests `contains NAME` on it as bits)
NS_FLAG_BITS: BitTable = (*_CLONE_BITS, _NEWTIME)


def render_clone_flags(flags: int) -> str:
    """clone(2) flags; the low byte (exit signal) is not a flag there and is ignored."""
    return render_bits(flags & ~0xFF, _CLONE_BITS) if flags & ~0xFF else "0"


def render_ns_flags(flags: int) -> str:
    """unshare(2) / setns(2) flags, where 0x80 is CLONE_NEWTIME."""
    return render_bits(flags, NS_FLAG_BITS) if flags else "0"


# --- enumerations ---------------------------------------------------------------------------
def _enum(mapping: dict[int, str]) -> Callable[[int], str]:
    get = mapping.get

    def render(value: int) -> str:
        name = get(value)
        return name if name is not None else str(value)

    return render


PTRACE_REQUESTS: dict[int, str] = {
    0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSR",
    4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSR", 7: "PTRACE_CONT",
    8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS",
    14: "PTRACE_GETFPREGS", 15: "PTRACE_SETFPREGS", 16: "PTRACE_ATTACH", 17: "PTRACE_DETACH",
    18: "PTRACE_GETFPXREGS", 19: "PTRACE_SETFPXREGS", 24: "PTRACE_SYSCALL",
    30: "PTRACE_ARCH_PRCTL", 31: "PTRACE_SYSEMU", 32: "PTRACE_SYSEMU_SINGLESTEP",
    33: "PTRACE_SINGLEBLOCK", 0x4200: "PTRACE_SETOPTIONS", 0x4201: "PTRACE_GETEVENTMSG",
    0x4202: "PTRACE_GETSIGINFO", 0x4203: "PTRACE_SETSIGINFO", 0x4204: "PTRACE_GETREGSET",
    0x4205: "PTRACE_SETREGSET", 0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT",
    0x4208: "PTRACE_LISTEN", 0x4209: "PTRACE_PEEKSIGINFO", 0x420A: "PTRACE_GETSIGMASK",
    0x420B: "PTRACE_SETSIGMASK", 0x420C: "PTRACE_SECCOMP_GET_FILTER",
    0x420D: "PTRACE_SECCOMP_GET_METADATA", 0x420E: "PTRACE_GET_SYSCALL_INFO",
}
render_ptrace_request = _enum(PTRACE_REQUESTS)

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
AF_PACKET = 17
_AF_NAMES = (  # noqa: SIM905
    "AF_UNSPEC AF_UNIX AF_INET AF_AX25 AF_IPX AF_APPLETALK AF_NETROM AF_BRIDGE AF_ATMPVC AF_X25 "
    "AF_INET6 AF_ROSE AF_DECnet AF_NETBEUI AF_SECURITY AF_KEY AF_NETLINK AF_PACKET AF_ASH "
    "AF_ECONET AF_ATMSVC AF_RDS AF_SNA AF_IRDA AF_PPPOX AF_WANPIPE AF_LLC AF_IB AF_MPLS AF_CAN "
    "AF_TIPC AF_BLUETOOTH AF_IUCV AF_RXRPC AF_ISDN AF_PHONET AF_IEEE802154 AF_CAIF AF_ALG "
    "AF_NFC AF_VSOCK AF_KCM AF_QIPCRTR AF_SMC AF_XDP AF_MCTP"
).split()
SOCKET_FAMILIES: dict[int, str] = dict(enumerate(_AF_NAMES))
render_socket_family = _enum(SOCKET_FAMILIES)

SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
#: socket(2) type names of the low four bits, and the flags above them (render_socket_type;
#: the kernel prefilter tests `contains NAME` on them)
SOCK_TYPE_NAMES = _SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM",
               5: "SOCK_SEQPACKET", 6: "SOCK_DCCP", 10: "SOCK_PACKET"}
SOCK_FLAG_BITS = _SOCK_FLAGS = (("SOCK_NONBLOCK", 0o4000), ("SOCK_CLOEXEC", 0o2000000))


def render_socket_type(value: int) -> str:
    """socket(2) type: the kind, then SOCK_NONBLOCK / SOCK_CLOEXEC when set."""
    kind = value & 0xF
    parts = [_SOCK_TYPES.get(kind, str(kind))]
    parts.extend(name for name, bit in _SOCK_FLAGS if value & bit)
    return "|".join(parts)


def render_sock_flags(value: int) -> str:
    """accept4(2) flags."""
    return render_bits(value, _SOCK_FLAGS) if value else "0"


SIGNALS: dict[int, str] = {int(s): s.name for s in _signal.Signals}


def render_signal(value: int) -> str:
    name = SIGNALS.get(value)
    if name is not None:
        return name
    rtmin = int(getattr(_signal, "SIGRTMIN", 34))
    if rtmin < value <= int(getattr(_signal, "SIGRTMAX", 64)):
        return f"SIGRTMIN+{value - rtmin}"
    return str(value)


_BPF_CMD_NAMES = (  # noqa: SIM905
    "MAP_CREATE MAP_LOOKUP_ELEM MAP_UPDATE_ELEM MAP_DELETE_ELEM MAP_GET_NEXT_KEY PROG_LOAD "
    "OBJ_PIN OBJ_GET PROG_ATTACH PROG_DETACH PROG_TEST_RUN PROG_GET_NEXT_ID MAP_GET_NEXT_ID "
    "PROG_GET_FD_BY_ID MAP_GET_FD_BY_ID OBJ_GET_INFO_BY_FD PROG_QUERY RAW_TRACEPOINT_OPEN "
    "BTF_LOAD BTF_GET_FD_BY_ID TASK_FD_QUERY MAP_LOOKUP_AND_DELETE_ELEM MAP_FREEZE "
    "BTF_GET_NEXT_ID MAP_LOOKUP_BATCH MAP_LOOKUP_AND_DELETE_BATCH MAP_UPDATE_BATCH "
    "MAP_DELETE_BATCH LINK_CREATE LINK_UPDATE LINK_GET_FD_BY_ID LINK_GET_NEXT_ID ENABLE_STATS "
    "ITER_CREATE LINK_DETACH PROG_BIND_MAP TOKEN_CREATE"
).split()
BPF_CMDS: dict[int, str] = {i: "BPF_" + n for i, n in enumerate(_BPF_CMD_NAMES)}
render_bpf_cmd = _enum(BPF_CMDS)

# --- other bit sets ----------------------------------------------------------------------
_MOUNT_BITS: BitTable = (
    ("MS_RDONLY", 1), ("MS_NOSUID", 2), ("MS_NODEV", 4), ("MS_NOEXEC", 8),
    ("MS_SYNCHRONOUS", 16), ("MS_REMOUNT", 32), ("MS_MANDLOCK", 64), ("MS_DIRSYNC", 128),
    ("MS_NOSYMFOLLOW", 256), ("MS_NOATIME", 1024), ("MS_NODIRATIME", 2048),
    ("MS_BIND", 4096), ("MS_MOVE", 8192), ("MS_REC", 16384), ("MS_SILENT", 32768),
    ("MS_POSIXACL", 1 << 16), ("MS_UNBINDABLE", 1 << 17), ("MS_PRIVATE", 1 << 18),
    ("MS_SLAVE", 1 << 19), ("MS_SHARED", 1 << 20), ("MS_RELATIME", 1 << 21),
    ("MS_KERNMOUNT", 1 << 22), ("MS_I_VERSION", 1 << 23), ("MS_STRICTATIME", 1 << 24),
    ("MS_LAZYTIME", 1 << 25),
)
_UMOUNT_BITS: BitTable = (("MNT_FORCE", 1), ("MNT_DETACH", 2), ("MNT_EXPIRE", 4),
                          ("UMOUNT_NOFOLLOW", 8))
_MEMFD_BITS: BitTable = (("MFD_CLOEXEC", 1), ("MFD_ALLOW_SEALING", 2), ("MFD_HUGETLB", 4),
                         ("MFD_NOEXEC_SEAL", 8), ("MFD_EXEC", 16))
_AT_BITS: BitTable = (("AT_SYMLINK_NOFOLLOW", 0x100), ("AT_REMOVEDIR", 0x200),
                      ("AT_SYMLINK_FOLLOW", 0x400), ("AT_NO_AUTOMOUNT", 0x800),
                      ("AT_EMPTY_PATH", 0x1000))
_RENAME_BITS: BitTable = (("RENAME_NOREPLACE", 1), ("RENAME_EXCHANGE", 2),
                          ("RENAME_WHITEOUT", 4))
_DUP3_BITS: BitTable = (("O_CLOEXEC", _O["O_CLOEXEC"] or 0o2000000),)


def _bits(table: BitTable) -> Callable[[int], str]:
    def render(value: int) -> str:
        return render_bits(value, table) if value else "0"

    return render


render_mount_flags = _bits(_MOUNT_BITS)
render_umount_flags = _bits(_UMOUNT_BITS)
render_memfd_flags = _bits(_MEMFD_BITS)
render_at_flags = _bits(_AT_BITS)
render_rename_flags = _bits(_RENAME_BITS)
render_dup3_flags = _bits(_DUP3_BITS)

# --- extended attributes, inode attributes, prctl ----------------------------------------------
_XATTR_BITS: BitTable = (("XATTR_CREATE", 1), ("XATTR_REPLACE", 2))
render_xattr_flags = _bits(_XATTR_BITS)

#: FS_*_FL of linux/fs.h (lsattr's letters: i immutable, a append-only, ...)
_INODE_BITS: BitTable = (
    ("FS_SECRM_FL", 0x1), ("FS_UNRM_FL", 0x2), ("FS_COMPR_FL", 0x4), ("FS_SYNC_FL", 0x8),
    ("FS_IMMUTABLE_FL", 0x10), ("FS_APPEND_FL", 0x20), ("FS_NODUMP_FL", 0x40),
    ("FS_NOATIME_FL", 0x80), ("FS_DIRTY_FL", 0x100), ("FS_COMPRBLK_FL", 0x200),
    ("FS_NOCOMP_FL", 0x400), ("FS_ENCRYPT_FL", 0x800), ("FS_INDEX_FL", 0x1000),
    ("FS_IMAGIC_FL", 0x2000), ("FS_JOURNAL_DATA_FL", 0x4000), ("FS_NOTAIL_FL", 0x8000),
    ("FS_DIRSYNC_FL", 0x10000), ("FS_TOPDIR_FL", 0x20000), ("FS_HUGE_FILE_FL", 0x40000),
    ("FS_EXTENT_FL", 0x80000), ("FS_VERITY_FL", 0x100000), ("FS_EA_INODE_FL", 0x200000),
    ("FS_EOFBLOCKS_FL", 0x400000), ("FS_NOCOW_FL", 0x800000), ("FS_DAX_FL", 0x2000000),
    ("FS_INLINE_DATA_FL", 0x10000000), ("FS_PROJINHERIT_FL", 0x20000000),
    ("FS_CASEFOLD_FL", 0x40000000),
)
render_inode_flags = _bits(_INODE_BITS)

#: the ioctl requests the sensor reports (bpf/abi.h enum sw_kconst)
IOCTL_REQUESTS: dict[int, str] = {
    int(KConst.FS_IOC_SETFLAGS): "FS_IOC_SETFLAGS",
    int(KConst.FS_IOC_FSSETXATTR): "FS_IOC_FSSETXATTR",
}
render_ioctl_request = _enum(IOCTL_REQUESTS)

_PR_NAMES = (  # noqa: SIM905 (linux/prctl.h, from 1)
    "SET_PDEATHSIG GET_PDEATHSIG GET_DUMPABLE SET_DUMPABLE GET_UNALIGN SET_UNALIGN "
    "GET_KEEPCAPS SET_KEEPCAPS GET_FPEMU SET_FPEMU GET_FPEXC SET_FPEXC GET_TIMING SET_TIMING "
    "SET_NAME GET_NAME - - GET_ENDIAN SET_ENDIAN GET_SECCOMP SET_SECCOMP CAPBSET_READ "
    "CAPBSET_DROP GET_TSC SET_TSC GET_SECUREBITS SET_SECUREBITS SET_TIMERSLACK GET_TIMERSLACK "
    "TASK_PERF_EVENTS_DISABLE TASK_PERF_EVENTS_ENABLE MCE_KILL MCE_KILL_GET SET_MM "
    "SET_CHILD_SUBREAPER GET_CHILD_SUBREAPER SET_NO_NEW_PRIVS GET_NO_NEW_PRIVS "
    "GET_TID_ADDRESS SET_THP_DISABLE GET_THP_DISABLE MPX_ENABLE_MANAGEMENT "
    "MPX_DISABLE_MANAGEMENT SET_FP_MODE GET_FP_MODE CAP_AMBIENT - - SVE_SET_VL SVE_GET_VL "
    "GET_SPECULATION_CTRL SET_SPECULATION_CTRL PAC_RESET_KEYS SET_TAGGED_ADDR_CTRL "
    "GET_TAGGED_ADDR_CTRL SET_IO_FLUSHER GET_IO_FLUSHER SET_SYSCALL_USER_DISPATCH"
).split()
PRCTL_OPTIONS: dict[int, str] = {
    i: "PR_" + n for i, n in enumerate(_PR_NAMES, start=1) if n != "-"}
assert PRCTL_OPTIONS[int(KConst.PR_SET_NAME)] == "PR_SET_NAME"
render_prctl_option = _enum(PRCTL_OPTIONS)

# --- capabilities ----------------------------------------------------------------------------
CAPABILITIES: tuple[str, ...] = tuple("CAP_" + n for n in (  # noqa: SIM905
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE"
).split())
ALL_CAPS_MASK = (1 << len(CAPABILITIES)) - 1


@lru_cache(maxsize=1024)
def render_caps(mask: int) -> str:
    """Capability names in bit order separated by spaces; "" for the empty set."""
    return " ".join(name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1)


# --- errno -------------------------------------------------------------------------------
ERRNO_NAMES: dict[int, str] = dict(_errno.errorcode)
# Python picks aliases for a few numbers; use the names the kernel headers list first.
ERRNO_NAMES.update({
    _errno.EAGAIN: "EAGAIN", _errno.EDEADLK: "EDEADLK", _errno.EOPNOTSUPP: "EOPNOTSUPP",
})
EINPROGRESS = _errno.EINPROGRESS


def render_res(res: int) -> str:
    """``evt.res``: "SUCCESS" for a result >= 0, else the errno name ("ENOENT")."""
    if res >= 0:
        return "SUCCESS"
    name = ERRNO_NAMES.get(-res)
    return name if name is not None else str(res)
