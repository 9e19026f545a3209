"""The enforcement unit's wire format: mirrors bpf/enforce.h with the same mechanism as the
sensors' (sysward.events.layout): struct layouts as field lists, constants as enums;
tests/unit/test_abi.py checks both against the BTF of enforce.bpf.o."""

from __future__ import annotations

import struct
from enum import IntEnum

from sysward.events.layout import AbiEnum, Layout
from sysward.events.types import COMM_LEN

OBJECT_NAME = "enforce.bpf.o"


class Bound(IntEnum):
    """enum enf_bound."""

    MAX_SLOTS = 64  # one bit per slot in every mask
    PATH_MAX = 256  # bytes of a path the kernel compares (the LPM trie key's data)
    PATH_DEPTH = 40  # components walked


MAX_SLOTS = int(Bound.MAX_SLOTS)
PATH_MAX = int(Bound.PATH_MAX)


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

CFG = Layout("enf_cfg", (
    ("type_slots", f"{ENF_T_MAX}Q"), ("req_pos", f"{ENF_K_MAX}Q"), ("req_neg", f"{ENF_K_MAX}Q"),
    ("kill_slots", "Q"), ("deny_slots", "Q"), ("audit_slots", "Q"),
))
BITS = Layout("enf_bits", (("pos", "Q"), ("neg", "Q")))
PATH_KEY = Layout("enf_path_key", (("prefixlen", "I"), ("data", f"{PATH_MAX}s")))
ADDR_KEY = Layout("enf_addr_key", (("prefixlen", "I"), ("addr", "16s")))
COMM_KEY = Layout("enf_comm_key", (("comm", f"{COMM_LEN}s"),))
REPORT = Layout("enf_report", (
    ("ts", "Q"), ("slots", "Q"), ("cgroup_id", "Q"), ("pid", "I"), ("tid", "I"), ("uid", "I"),
    ("err", "i"), ("etype", "H"), ("action", "B"), ("reason", "B"), ("port", "H"),
    ("family", "H"), ("addr", "16s"), ("comm", f"{COMM_LEN}s"),
))
#: a plain __u32 map key or value (not a struct of enforce.h)
U32 = struct.Struct("<I")

#: every struct of enforce.h, by C name (the ABI test walks this)
LAYOUTS: dict[str, Layout] = {
    lay.name: lay for lay in (CFG, BITS, PATH_KEY, ADDR_KEY, COMM_KEY, REPORT)}

#: the constant enums of enforce.h and their mirrors (the ABI test walks this)
ENUMS: tuple[AbiEnum, ...] = (
    AbiEnum("enf_bound", Bound, "ENF_"),
    AbiEnum("enf_type", EnfType, "ENF_T_", (("ENF_T_MAX", ENF_T_MAX),)),
    AbiEnum("enf_kind", Kind, "ENF_K_", (("ENF_K_MAX", ENF_K_MAX),)),
    AbiEnum("enf_act", Act, "ENF_ACT_"),
    AbiEnum("enf_protect", Protect, "ENF_PROT_"),
    AbiEnum("enf_counter", Counter, "ENF_C_", (("ENF_C_MAX", ENF_C_MAX),)),
)
