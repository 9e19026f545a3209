"""The enforcement unit's wire format: mirrors bpf/enforce.h (a test checks it against BTF)."""

from __future__ import annotations

import struct
from enum import IntEnum

MAX_SLOTS = 64
PATH_MAX = 256  # bytes of a path the kernel compares (the LPM trie key's data)
OBJECT_NAME = "enforce.bpf.o"


class EnfType(IntEnum):
    """Which kind of hook asks (enum enf_type)."""

    EXEC = 0
    OPEN = 1
    CONNECT = 2
    PTRACE = 3
    SETUID = 4
    SETGID = 5
    UNSHARE = 6
    SETNS = 7
    MEMFD = 8
    BPF = 9
    MOUNT = 10
    MODULE = 11
    VMWRITE = 12
    CAPSET = 13


ENF_T_MAX = 16


class Kind(IntEnum):
    """The fields the kernel can test (enum enf_kind)."""

    CONTAINER = 0
    UID = 1
    COMM = 2
    PORT = 3
    ADDR = 4
    FILE = 5
    EXE = 6


ENF_K_MAX = 8


class Act(IntEnum):
    KILLED = 1
    WOULD_KILL = 2
    DENIED = 3
    WOULD_DENY = 4
    FAILED = 5
    PROTECTED = 6


class Protect(IntEnum):
    NONE = 0
    INIT = 1
    AGENT = 2
    KTHREAD = 3
    NEVER_KILL = 4
    TGID = 5


class Counter(IntEnum):
    KILLED = 0
    WOULD_KILL = 1
    DENIED = 2
    WOULD_DENY = 3
    FAILED = 4
    PROTECTED = 5
    REPORT_LOST = 6
    CHECKS = 7


ENF_C_MAX = 8

# struct enf_cfg: u64 type_slots[16], req_pos[8], req_neg[8], kill, deny, audit
CFG = struct.Struct(f"<{ENF_T_MAX}Q{ENF_K_MAX}Q{ENF_K_MAX}QQQQ")
# struct enf_bits: u64 pos, neg
BITS = struct.Struct("<QQ")
# struct enf_path_key: u32 prefixlen, u8 data[256]
PATH_KEY = struct.Struct(f"<I{PATH_MAX}s")
# struct enf_addr_key: u32 prefixlen, u8 addr[16]
ADDR_KEY = struct.Struct("<I16s")
COMM_KEY = struct.Struct("<16s")
U32 = struct.Struct("<I")
# struct enf_report
REPORT = struct.Struct("<QQQIIIiHBBHH16s16s")

#: field names and offsets of struct enf_report, for the BTF check
REPORT_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("ts", 0, 8), ("slots", 8, 8), ("cgroup_id", 16, 8), ("pid", 24, 4), ("tid", 28, 4),
    ("uid", 32, 4), ("err", 36, 4), ("etype", 40, 2), ("action", 42, 1), ("reason", 43, 1),
    ("port", 44, 2), ("family", 46, 2), ("addr", 48, 16), ("comm", 64, 16),
)
