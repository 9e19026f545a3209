"""Filling the enforcement unit's maps from a compiled plan.

Every set map stores, per key, two masks: the slots whose positive test the key satisfies and
the slots whose negated test it satisfies.  For the LPM tries (paths, addresses) a lookup
returns only the longest stored prefix of the key, so each stored entry carries the union of
its own masks and those of every shorter stored entry that is a prefix of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sysward.enforce.abi import (
    ADDR_KEY,
    BITS,
    CFG,
    COMM_KEY,
    ENF_K_MAX,
    ENF_T_MAX,
    PATH_KEY,
    PATH_MAX,
    U32,
    Kind,
)
from sysward.enforce.compiler import Plan


@dataclass(slots=True)
class Tables:
    """What the maps will hold, as plain Python (testable without a kernel)."""

    config: bytes = b""
    exe: dict[tuple[bytes, bool], list[int]] = field(default_factory=dict)
    file: dict[tuple[bytes, bool], list[int]] = field(default_factory=dict)
    addr: dict[tuple[bytes, int], list[int]] = field(default_factory=dict)
    comm: dict[bytes, list[int]] = field(default_factory=dict)
    uid: dict[int, list[int]] = field(default_factory=dict)
    port: dict[int, list[int]] = field(default_factory=dict)


def build_tables(plan: Plan) -> Tables:
    type_slots = [0] * ENF_T_MAX
    req_pos = [0] * ENF_K_MAX
    req_neg = [0] * ENF_K_MAX
    kill = deny = audit = 0
    sets: dict[Kind, defaultdict[Any, list[int]]] = {k: defaultdict(lambda: [0, 0]) for k in Kind}
    for i, slot in enumerate(plan.slots):
        bit = 1 << i
        for et in slot.types:
            type_slots[et] |= bit
        if slot.kill:
            kill |= bit
        else:
            deny |= bit
        if slot.audit:
            audit |= bit
        for kind, test in slot.pos.items():
            req_pos[kind] |= bit
            if kind is not Kind.CONTAINER:
                for v in test.values:
                    sets[kind][v][0] |= bit
        for kind, values in slot.neg.items():
            req_neg[kind] |= bit
            if kind is not Kind.CONTAINER:
                for v in values:
                    sets[kind][v][1] |= bit
    t = Tables()
    t.config = CFG.pack(*type_slots, *req_pos, *req_neg, kill, deny, audit)
    t.exe = _merge_paths(sets[Kind.EXE])
    t.file = _merge_paths(sets[Kind.FILE])
    t.addr = _merge_addrs(sets[Kind.ADDR])
    t.comm = dict(sets[Kind.COMM])
    t.uid = dict(sets[Kind.UID])
    t.port = dict(sets[Kind.PORT])
    return t


def _path_bytes(key: tuple[bytes, bool]) -> bytes:
    raw, exact = key
    return raw + b"\0" if exact else raw


def _merge_paths(entries: dict[Any, list[int]]) -> dict[tuple[bytes, bool], list[int]]:
    out: dict[tuple[bytes, bool], list[int]] = {}
    for key in entries:
        data = _path_bytes(key)
        pos = neg = 0
        for other, (p, n) in entries.items():
            if data.startswith(_path_bytes(other)):
                pos |= p
                neg |= n
        out[key] = [pos, neg]
    return out


def _addr_bits(addr: bytes, plen: int) -> int:
    return int.from_bytes(addr, "big") >> (128 - plen) if plen else 0


def _merge_addrs(entries: dict[Any, list[int]]) -> dict[tuple[bytes, int], list[int]]:
    out: dict[tuple[bytes, int], list[int]] = {}
    for addr, plen in entries:
        pos = neg = 0
        for (oaddr, oplen), (p, n) in entries.items():
            if oplen <= plen and _addr_bits(addr, oplen) == _addr_bits(oaddr, oplen):
                pos |= p
                neg |= n
        out[(addr, plen)] = [pos, neg]
    return out


def path_key(raw: bytes, exact: bool) -> bytes:
    data = raw + b"\0" if exact else raw
    return PATH_KEY.pack(len(data) * 8, data.ljust(PATH_MAX, b"\0"))


def fill(obj: Any, tables: Tables, never_kill: Iterable[str], protected: Iterable[int]) -> None:
    """Write the tables into the loaded object's maps (fresh maps: nothing to delete)."""
    for name, entries in (("enf_exe", tables.exe), ("enf_file", tables.file)):
        m = obj.map(name)
        for (raw, exact), (pos, neg) in entries.items():
            m.update(path_key(raw, exact), BITS.pack(pos, neg))
    m = obj.map("enf_addr")
    for (addr, plen), (pos, neg) in tables.addr.items():
        m.update(ADDR_KEY.pack(plen, addr), BITS.pack(pos, neg))
    m = obj.map("enf_comm")
    for comm, (pos, neg) in tables.comm.items():
        m.update(COMM_KEY.pack(comm), BITS.pack(pos, neg))
    for name, table in (("enf_uid", tables.uid), ("enf_port", tables.port)):
        m = obj.map(name)
        for n, (pos, neg) in table.items():
            m.update(U32.pack(n), BITS.pack(pos, neg))
    m = obj.map("enf_never_kill")
    for path in never_kill:
        raw = path.encode()
        if raw.startswith(b"/") and len(raw) < PATH_MAX - 1:
            m.update(path_key(raw, True), BITS.pack(1, 0))
    m = obj.map("enf_protected")
    for tgid in protected:
        m.update(U32.pack(tgid), U32.pack(1))
    # the config last: until it is written no hook has a candidate slot
    obj.map("enf_config").update(U32.pack(0), tables.config)
