"""Approvers -> the prefilter's kernel maps (bpf/sw_prefilter.h), as plain Python first.

Per event type one ``struct pf_type`` (array map ``pf_types``, keyed by the event type id):
its clause mask, per kind the clauses that need a hit (``req_pos``) or no hit (``req_neg``),
its feature bits and the allow table (for each value of the feature bits, the clauses whose
feature literals all hold).  The set maps are shared by all types, keyed by (type, value):
``pf_comm`` (hash), ``pf_path`` and ``pf_name`` (LPM tries whose key data starts with the
type id byte, so one type's entries never match another's).  An LPM lookup returns only the
longest stored prefix, so every entry carries the masks of the shorter entries it extends
(as the enforcement tables do).
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sysward.enforce.prefilter.abi import (
    BITS,
    COMM_KEY,
    FEAT,
    LPM_KEY,
    NET_KEY,
    PORT_KEY,
    TYPE,
    Bound,
    Mode,
)
from sysward.enforce.prefilter.atoms import Entry, Feature, Input, Kind
from sysward.enforce.prefilter.compiler import MAX_FEATURES, Approvers, TypeFilter
from sysward.enforce.prefilter.literals import KIND_MAX
from sysward.events.types import BY_NAME

KEY_DATA = int(Bound.KEY_DATA)
MODE_PASS, MODE_FILTER = int(Mode.PASS), int(Mode.FILTER)


@dataclass(slots=True)
class TypeTable:
    mode: int = MODE_PASS
    clauses: int = 0
    req_pos: list[int] = field(default_factory=lambda: [0] * KIND_MAX)
    req_neg: list[int] = field(default_factory=lambda: [0] * KIND_MAX)
    features: list[Feature] = field(default_factory=list)
    allow: list[int] = field(default_factory=lambda: [0] * (1 << MAX_FEATURES))

    def pack(self) -> bytes:
        feats = b"".join(FEAT.pack(f.input, f.op, 0, 0, f.mask, _s64(f.value))
                         for f in self.features).ljust(FEAT.size * MAX_FEATURES, b"\0")
        return TYPE.pack(self.mode, len(self.features), self.clauses, *self.req_pos,
                         *self.req_neg, feats, *self.allow)


@dataclass(slots=True)
class Tables:
    """What the maps hold: type id -> TypeTable; (type id, key) -> [pos, neg] masks."""

    types: dict[int, TypeTable] = field(default_factory=dict)
    comm: dict[tuple[int, bytes], list[int]] = field(default_factory=dict)
    path: dict[tuple[int, Entry], list[int]] = field(default_factory=dict)
    name: dict[tuple[int, Entry], list[int]] = field(default_factory=dict)
    #: (type id, kind, (family, address, prefix bits)) -> masks: pf_net (LPM), each entry
    #: carrying the masks of the shorter ones it lies in
    net: dict[tuple[int, int, tuple[int, bytes, int]], list[int]] = field(default_factory=dict)
    #: (type id, kind, port) -> masks: pf_port (hash)
    port: dict[tuple[int, int, int], list[int]] = field(default_factory=dict)
    #: (map name, type id) -> {entry bytes: masks}: the model's lookups (built on first use)
    index: dict[tuple[str, int], dict[bytes, list[int]]] = field(default_factory=dict)

    def entries_of(self, which: str, tid: int) -> dict[bytes, list[int]]:
        key = (which, tid)
        got = self.index.get(key)
        if got is None:
            src = self.path if which == "path" else self.name
            got = {entry_bytes(e): m for (t, e), m in src.items() if t == tid}
            self.index[key] = got
        return got


def _s64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _allow(tf: TypeFilter) -> list[int]:
    index = {f: i for i, f in enumerate(tf.features)}
    out = [0] * (1 << MAX_FEATURES)
    for bits in range(1 << len(tf.features)):
        mask = 0
        for ci, c in enumerate(tf.clauses):
            ok = True
            for test, positive in c.feats:
                hit = any(bits >> index[f] & 1 for f in test.anyof)
                if hit != positive:
                    ok = False
                    break
            if ok:
                mask |= 1 << ci
        out[bits] = mask
    # feature bits beyond those used are never set by the kernel
    return out


def build_tables(approvers: Approvers) -> Tables:
    t = Tables()
    sets: dict[Kind, defaultdict[tuple[int, Any], list[int]]] = {
        k: defaultdict(lambda: [0, 0]) for k in Kind}
    for evt, tf in approvers.by_type.items():
        et = BY_NAME.get(evt)
        if et is None:
            continue
        tt = TypeTable()
        t.types[et.id] = tt
        if tf.passes_all:
            continue
        tt.mode = MODE_FILTER
        tt.clauses = (1 << len(tf.clauses)) - 1
        tt.features = list(tf.features)
        tt.allow = _allow(tf)
        for ci, c in enumerate(tf.clauses):
            bit = 1 << ci
            if any(f.input is Input.PATHBITS for t, _ in c.feats for f in t.anyof):
                tt.req_pos[Kind.PATHBITS] |= bit
            for kind, test in c.pos.items():
                tt.req_pos[kind] |= bit
                for v in test.values:
                    sets[kind][(et.id, v)][0] |= bit
            for kind, values in c.neg.items():
                tt.req_neg[kind] |= bit
                for v in values:
                    sets[kind][(et.id, v)][1] |= bit
    t.comm = dict(sets[Kind.COMM])
    t.path = _merge(sets[Kind.PATH])
    t.name = _merge(sets[Kind.NAME])
    for kind in (Kind.ADDR, Kind.SADDR):
        t.net.update(_merge_nets(kind, sets[kind]))
    for kind in (Kind.PORT, Kind.SPORT):
        for (tid, port), masks in sets[kind].items():
            t.port[(tid, int(kind), port)] = masks
    _fit_sets(t)
    return t


def _fit_sets(t: Tables) -> None:
    """Each set map holds PF_SETS entries: while one would overflow, the type with the most
    entries in it passes every event instead (sound, only less selective)."""
    maps: tuple[dict[Any, list[int]], ...] = (t.comm, t.path, t.name, t.net, t.port)
    for entries in maps:
        while len(entries) > int(Bound.SETS):
            count: dict[int, int] = {}
            for tid, _ in entries:
                count[tid] = count.get(tid, 0) + 1
            worst = max(count, key=lambda k: count[k])
            t.types[worst] = TypeTable()
            for m in maps:
                for key in [k for k in m if k[0] == worst]:
                    del m[key]


def entry_bytes(entry: Entry) -> bytes:
    raw, exact = entry
    return raw + b"\0" if exact else raw


def _merge(entries: dict[tuple[int, Any], list[int]]) -> dict[tuple[int, Entry], list[int]]:
    by_type: defaultdict[int, list[tuple[Entry, list[int]]]] = defaultdict(list)
    for (tid, e), masks in entries.items():
        by_type[tid].append((e, masks))
    out: dict[tuple[int, Entry], list[int]] = {}
    for tid, items in by_type.items():
        for e, _ in items:
            data = entry_bytes(e)
            pos = neg = 0
            for other, (p, n) in items:
                if data.startswith(entry_bytes(other)):
                    pos |= p
                    neg |= n
            out[(tid, e)] = [pos, neg]
    return out


def net_bits(addr: bytes, plen: int) -> int:
    """The first ``plen`` bits of an address, as an integer."""
    return int.from_bytes(addr, "big") >> (len(addr) * 8 - plen) if plen else 0


def _merge_nets(kind: Kind, entries: dict[tuple[int, Any], list[int]]
                ) -> dict[tuple[int, int, tuple[int, bytes, int]], list[int]]:
    out: dict[tuple[int, int, tuple[int, bytes, int]], list[int]] = {}
    for (tid, (fam, addr, plen)) in entries:
        pos = neg = 0
        for (otid, (ofam, oaddr, oplen)), (p, n) in entries.items():
            if (otid == tid and ofam == fam and oplen <= plen
                    and net_bits(addr, oplen) == net_bits(oaddr, oplen)):
                pos |= p
                neg |= n
        out[(tid, int(kind), (fam, addr, plen))] = [pos, neg]
    return out


def net_key(tid: int, kind: int, fam: int, addr: bytes, plen: int) -> bytes:
    """pf_net key: type id, kind, family, then the address; ``plen`` bits of the address
    compared (the network address of an entry is zero past its prefix)."""
    nbytes = (plen + 7) // 8
    masked = net_bits(addr, plen) << (len(addr) * 8 - plen) if plen else 0
    raw = masked.to_bytes(len(addr), "big")[:nbytes]
    data = bytes([tid, kind, fam]) + raw
    return NET_KEY.pack(24 + plen, data.ljust(int(Bound.NET_DATA), b"\0"))


def port_key(tid: int, kind: int, port: int) -> bytes:
    return PORT_KEY.pack(tid, kind, port)


def lpm_key(tid: int, data: bytes) -> bytes:
    full = bytes([tid]) + data
    return LPM_KEY.pack(len(full) * 8, full.ljust(KEY_DATA, b"\0"))


def comm_key(tid: int, comm: bytes) -> bytes:
    return COMM_KEY.pack(tid, comm.ljust(16, b"\0"))


def fill(obj: Any, tables: Tables, old: Tables | None = None) -> None:
    """Write ``tables`` into the sensor object's maps, replacing ``old`` (what was written
    before, on a reload).  Every type is switched to "pass" first and its new approver is
    written last, so no event is judged by half-written sets."""
    types = obj.map("pf_types")
    if old is not None:
        passing = TypeTable().pack()
        for tid in old.types:
            types.update(_U32.pack(tid), passing)
        m = obj.map("pf_comm")
        for tid, comm in old.comm:
            m.delete(comm_key(tid, comm))
        for name, entries in (("pf_path", old.path), ("pf_name", old.name)):
            m = obj.map(name)
            for tid, e in entries:
                m.delete(lpm_key(tid, entry_bytes(e)))
        m = obj.map("pf_net")
        for tid, kind, (fam, addr, plen) in old.net:
            m.delete(net_key(tid, kind, fam, addr, plen))
        m = obj.map("pf_port")
        for tid, kind, port in old.port:
            m.delete(port_key(tid, kind, port))
    m = obj.map("pf_comm")
    for (tid, comm), (pos, neg) in tables.comm.items():
        m.update(comm_key(tid, comm), BITS.pack(pos, neg))
    for name, entries in (("pf_path", tables.path), ("pf_name", tables.name)):
        m = obj.map(name)
        for (tid, e), (pos, neg) in entries.items():
            m.update(lpm_key(tid, entry_bytes(e)), BITS.pack(pos, neg))
    m = obj.map("pf_net")
    for (tid, kind, (fam, addr, plen)), (pos, neg) in tables.net.items():
        m.update(net_key(tid, kind, fam, addr, plen), BITS.pack(pos, neg))
    m = obj.map("pf_port")
    for (tid, kind, port), (pos, neg) in tables.port.items():
        m.update(port_key(tid, kind, port), BITS.pack(pos, neg))
    for tid, tt in tables.types.items():
        types.update(_U32.pack(tid), tt.pack())


_U32 = struct.Struct("<I")

__all__ = ["KEY_DATA", "MODE_FILTER", "MODE_PASS", "Tables", "TypeTable", "build_tables", "fill"]
