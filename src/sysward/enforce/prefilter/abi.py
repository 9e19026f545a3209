"""The prefilter's map layouts and constants: mirrors bpf/prefilter.h (tests/unit/test_abi.py
checks this mirror against the BTF of sysward.bpf.o)."""

from __future__ import annotations

from enum import IntEnum

from sysward.events.layout import AbiEnum, Layout


class Bound(IntEnum):
    """enum pf_bound"""

    MAX_FEATURES = 8
    ALLOW = 256
    KEY_DATA = 256
    DEPTH = 32
    SETS = 8192
    NET_DATA = 20


class Setting(IntEnum):
    """enum pf_setting: the load-time global ``prefilter``"""

    OFF = 0
    ON = 1
    AUDIT = 2


class Mode(IntEnum):
    """enum pf_mode: pf_type.mode"""

    PASS = 0
    FILTER = 1


class Op(IntEnum):
    """enum pf_op"""

    OP_MASK_EQ = 0
    OP_LT = 1


class PathBit(IntEnum):
    """enum pf_pathbit"""

    PB_DOT = 1


class End(IntEnum):
    """enum pf_end: what the kernel knows of one end of a socket record"""

    END_ABSENT = 0
    END_PRESENT = 1
    END_UNKNOWN = 2


FEAT = Layout("pf_feat", (("input", "B"), ("op", "B"), ("pad", "H"), ("pad2", "I"),
                          ("mask", "Q"), ("value", "q")))
TYPE = Layout("pf_type", (
    ("mode", "I"), ("nfeat", "I"), ("clauses", "Q"), ("req_pos", "8Q"), ("req_neg", "8Q"),
    ("feat", f"{FEAT.size * Bound.MAX_FEATURES}s"), ("allow", f"{Bound.ALLOW}Q"),
))
BITS = Layout("pf_bits", (("pos", "Q"), ("neg", "Q")))
COMM_KEY = Layout("pf_comm_key", (("type", "I"), ("comm", "16s")))
LPM_KEY = Layout("pf_lpm_key", (("prefixlen", "I"), ("data", f"{Bound.KEY_DATA}s")))
NET_KEY = Layout("pf_net_key", (("prefixlen", "I"), ("data", f"{Bound.NET_DATA}s")))
PORT_KEY = Layout("pf_port_key", (("type", "B"), ("kind", "B"), ("port", "H")))



class DiscBound(IntEnum):
    """enum pf_disc_bound (bpf/discard.h)"""

    DISC_PATH = 128
    DISC_MAX = 8192


DISC_KEY = Layout("pf_disc_key", (("type", "I"), ("path", f"{DiscBound.DISC_PATH}s")))
DISC_VAL = Layout("pf_disc_val", (("ref", "I"), ("pad", "I")))

LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (FEAT, TYPE, BITS, COMM_KEY, LPM_KEY,
                                                        NET_KEY, PORT_KEY, DISC_KEY, DISC_VAL)}


def _enums() -> tuple[AbiEnum, ...]:
    from sysward.enforce.prefilter.atoms import Input, Kind

    return (
        AbiEnum("pf_bound", Bound, "PF_"),
        AbiEnum("pf_setting", Setting, "PF_"),
        AbiEnum("pf_mode", Mode, "PF_"),
        AbiEnum("pf_input", Input, "PF_IN_"),
        AbiEnum("pf_op", Op, "PF_"),
        AbiEnum("pf_pathbit", PathBit, "PF_"),
        AbiEnum("pf_end", End, "PF_"),
        AbiEnum("pf_kind", Kind, "PF_K_", extra=(("PF_K_MAX", 8),)),
        AbiEnum("pf_disc_bound", DiscBound, "PF_"),
    )


ENUMS: tuple[AbiEnum, ...] = _enums()

__all__ = ["BITS", "COMM_KEY", "DISC_KEY", "DISC_VAL", "ENUMS", "FEAT", "LAYOUTS", "LPM_KEY",
           "NET_KEY", "PORT_KEY", "TYPE", "Bound", "DiscBound", "End", "Mode", "Setting"]
