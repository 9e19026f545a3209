"""The Python model of the kernel prefilter: the same decision, from the same inputs.

``decide(tables, facts)`` is what bpf/sw_prefilter.h computes for one event: the feature
bits of its integer inputs pick the allowed clauses; each set kind a clause needs is looked
up (comm, then base name, then full path) and narrows them; the event passes when a clause
is left.  A key the kernel cannot know (an empty comm, a path with ``.``/``..``/``//``
components or a trailing ``/``, a relative path whose directory is unknown, a path longer
than the key) leaves the clauses of its kind as they are: unknown means "may match".

``Facts`` are the kernel's inputs: the record's integer slots, result and effective uid, the
comm, the path argument as the user passed it and the directory a relative one is resolved
against.  The unit tests build events from facts through the real decoder; the kernel test
reads them back from the records (``facts_from_record``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from sysward.enforce.prefilter.atoms import KEY_MAX, PB_DOT, VIEWS, Input, Kind
from sysward.enforce.prefilter.compiler import MAX_FEATURES
from sysward.enforce.prefilter.tables import MODE_FILTER, Tables, net_bits
from sysward.events.model import NO_LOGINUID, Event
from sysward.events.text import KERNEL_TEXT_ERRORS
from sysward.events.types import BY_NAME, HEADER, SOCK, STRS

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10


@dataclass(frozen=True, slots=True)
class Sock:
    """The prefilter's view of a socket record (sw_sock)."""

    family: int = 0
    port: int = 0
    sport: int = 0
    sotype: int = 0
    proto: int = 0
    addr: bytes = bytes(16)
    saddr: bytes = bytes(16)
    upath: bytes = b""  # the unix path up to its NUL

    def inputs(self) -> tuple[int, int, int, int]:
        """i0..i3 as the sensor hands them over: family, port, sport, type | proto << 16."""
        return self.family, self.port, self.sport, self.sotype | self.proto << 16


@dataclass(frozen=True, slots=True)
class Facts:
    type: str
    inputs: tuple[int, int, int, int, int, int]  # i0..i3, res, euid (sysward...atoms.Input)
    comm: bytes
    name: bytes | None = None  # the path argument as passed (no NUL); None: no path
    dir: bytes | None = None  # absolute directory of a relative name; None: unknown
    loginuid: int = 0  # -1 when unset (4294967295 in the header)
    sock: Sock | None = None  # socket records: their addresses (inputs i0..i3 come from it)


def loginuid_input(raw: int) -> int:
    """Input.LOGINUID of a header's loginuid: -1 when unset, as user.loginuid shows it."""
    return -1 if raw == NO_LOGINUID else raw


#: what the kernel knows of one end of a socket record (enum pf_end)
END_ABSENT, END_PRESENT, END_UNKNOWN = 0, 1, 2


def end_of(s: Sock, end: str) -> tuple[int, bytes]:
    """(state, address bytes) of end "a" (addr/port) or "s" (saddr/sport)."""
    if s.family in (AF_INET, AF_INET6):
        raw = s.addr if end == "a" else s.saddr
        return END_PRESENT, raw[:4] if s.family == AF_INET else raw[:16]
    if end == "a" and s.family == AF_UNIX and s.upath[:1] not in (b"", b"/"):
        return END_UNKNOWN, b""  # a relative unix path may read as an IP address
    return END_ABSENT, b""


def _clean(path: bytes) -> bool:
    if not path or b"//" in path or (path.endswith(b"/") and path != b"/"):
        return False
    return not any(part in (b".", b"..") for part in path.split(b"/"))


def name_key(f: Facts) -> bytes | None:
    """The base name the kernel compares, or None when it cannot know it."""
    if f.name is None or len(f.name) > KEY_MAX or not _clean(f.name):
        return None
    base = f.name.rsplit(b"/", 1)[-1]
    return base if len(base) <= KEY_MAX else None


def path_key(f: Facts) -> bytes | None:
    """The absolute path the kernel compares, or None when it cannot know it."""
    if f.name is None or len(f.name) > KEY_MAX or not _clean(f.name):
        return None
    if f.name.startswith(b"/"):
        full = f.name
    elif f.dir is None or f.dir.strip(b"/") == b"":
        # no directory, or the root: the sensor writes no component for the root, so the
        # decoder leaves such a name relative (and the kernel says "unknown" likewise)
        return None
    else:
        full = (f.dir.rstrip(b"/") + b"/" + f.name)
    return full if len(full) <= KEY_MAX else None


def path_bits(key: bytes) -> int:
    """Input.PATHBITS of a known path."""
    return PB_DOT if b"/." in key else 0


_UNKNOWN = (1 << 64) - 1


def _lookup(tables: Tables, which: str, tid: int, key: bytes) -> tuple[int, int]:
    """LPM: the masks of the longest entry of type ``tid`` that is a prefix of key+NUL."""
    entries = tables.entries_of(which, tid)
    data = key + b"\0"
    for n in range(len(data), -1, -1):
        hit = entries.get(data[:n])
        if hit is not None:
            return hit[0], hit[1]
    return 0, 0


def _net_lookup(tables: Tables, tid: int, kind: Kind, fam: int, addr: bytes
                ) -> tuple[int, int]:
    """LPM: the masks of the longest (type, kind, family) entry the address lies in."""
    best: tuple[int, list[int]] | None = None
    for (t, k, (efam, eaddr, plen)), masks in tables.net.items():
        if t != tid or k != kind or efam != fam or plen > len(addr) * 8:
            continue
        if net_bits(addr, plen) == net_bits(eaddr, plen) and (best is None or plen > best[0]):
            best = (plen, masks)
    return (best[1][0], best[1][1]) if best is not None else (0, 0)


def decide(tables: Tables, f: Facts) -> bool:
    """True when the kernel passes the event."""
    et = BY_NAME.get(f.type)
    tt = tables.types.get(et.id) if et is not None else None
    if tt is None or tt.mode != MODE_FILTER:
        return True
    def bits(pathbits: int) -> int:
        out = 0
        for i, feat in enumerate(tt.features[:MAX_FEATURES]):
            if feat.input is Input.PATHBITS:
                x = pathbits
            elif feat.input is Input.LOGINUID:
                x = f.loginuid
            else:
                x = f.inputs[feat.input]
            if feat.holds(x):
                out |= 1 << i
        return out

    # the path's bits are unknown (all set) until the path is resolved
    cand = tt.clauses & tt.allow[bits(_UNKNOWN)]

    def apply(kind: Kind, hit: tuple[int, int] | None) -> None:
        nonlocal cand
        if hit is None:
            return  # unknown key: may match
        cand &= ~(tt.req_pos[kind] & ~hit[0])
        cand &= ~(tt.req_neg[kind] & hit[1])

    def needs(kind: Kind) -> bool:
        return bool(cand & (tt.req_pos[kind] | tt.req_neg[kind]))

    assert et is not None
    if f.sock is not None:
        for end, akind, pkind, port in (("a", Kind.ADDR, Kind.PORT, f.sock.port),
                                        ("s", Kind.SADDR, Kind.SPORT, f.sock.sport)):
            if not cand or not (needs(akind) or needs(pkind)):
                continue
            state, raw = end_of(f.sock, end)
            if state == END_UNKNOWN:
                continue
            if state == END_ABSENT:
                apply(akind, (0, 0))
                apply(pkind, (0, 0))
                continue
            apply(akind, _net_lookup(tables, et.id, akind, f.sock.family, raw))
            hit = tables.port.get((et.id, int(pkind), port))
            apply(pkind, (hit[0], hit[1]) if hit else (0, 0))
        if cand and needs(Kind.PATH):
            up = f.sock.upath if f.sock.family == AF_UNIX else b""
            apply(Kind.PATH, _lookup(tables, "path", et.id, up) if up else (0, 0))
    if cand and needs(Kind.COMM):
        comm = f.comm.split(b"\0", 1)[0]
        if comm:
            hit = tables.comm.get((et.id, comm))
            apply(Kind.COMM, (hit[0], hit[1]) if hit else (0, 0))
    if cand and needs(Kind.NAME):
        key = name_key(f)
        apply(Kind.NAME, None if key is None else _lookup(tables, "name", et.id, key))
    if cand and (needs(Kind.PATH) or needs(Kind.PATHBITS)):
        key = path_key(f)
        if key is not None:
            cand &= tt.allow[bits(path_bits(key))]
            if needs(Kind.PATH):
                apply(Kind.PATH, _lookup(tables, "path", et.id, key))
    return cand != 0


def facts_from_record(buf: bytes) -> Facts:
    """The kernel's inputs of one ring-buffer record (STRS and INTS payloads)."""
    h = HEADER.struct.unpack_from(buf, 0)
    names = [n for n, _ in HEADER.fields]
    hv = dict(zip(names, h, strict=True))
    et = next(t for t in BY_NAME.values() if t.id == hv["type"])
    off = HEADER.size
    ints = [0, 0, 0, 0]
    name: bytes | None = None
    dir_: bytes | None = None
    if et.layout is STRS:
        v = STRS.struct.unpack_from(buf, off)
        ints[:3] = list(v[:3])
        nl, dl = v[3], v[4]
        pos = off + STRS.size
        raw = buf[pos:pos + nl]
        name = raw.split(b"\0", 1)[0] if nl else None
        if dl:
            parts = buf[pos + nl:pos + nl + dl].split(b"\0")
            if parts and parts[-1] == b"":
                parts.pop()
            dir_ = b"/" + b"/".join(reversed(parts))
    elif et.layout.name == "sw_ints":
        ints = list(struct_ints(buf, off))
    sock: Sock | None = None
    if et.layout is SOCK:
        v = SOCK.struct.unpack_from(buf, off)
        sv = dict(zip([n for n, _ in SOCK.fields], v, strict=True))
        sock = Sock(sv["family"], sv["port"], sv["sport"], sv["sotype"], sv["proto"],
                    sv["addr"], sv["saddr"], sv["upath"].split(b"\0", 1)[0])
        ints = list(sock.inputs())
    return Facts(et.name, (ints[0], ints[1], ints[2], ints[3], hv["res"], hv["euid"]),
                 hv["comm"].split(b"\0", 1)[0], name, dir_, loginuid_input(hv["loginuid"]),
                 sock)


def facts_from_event(e: Event) -> Facts:
    """The kernel's inputs as far as a decoded event (a capture line) still shows them.

    The decoder has joined a relative path with its directory (and resolved '.' and '..' in
    it): the model sees that joined path as an absolute one, the very string the rules
    compare, so its decision stays sound for them (sysward replay --prefilter).
    """
    et = BY_NAME.get(e.type)
    ints = [0, 0, 0, 0]
    name: bytes | None = None
    if et is not None:
        for i, arg in enumerate(et.ints[:4]):
            v = e.args.get(arg) if arg else None
            if isinstance(v, int):
                ints[i] = v
        view = VIEWS.get(e.type)
        if view is not None and view.path_arg is not None:
            v = e.args.get(view.path_arg)
            if isinstance(v, str) and v:
                name = v.encode("utf-8", KERNEL_TEXT_ERRORS)
    sock: Sock | None = None
    if et is not None and et.layout is SOCK:
        sock = _sock_of_event(e)
        ints = list(sock.inputs())
    return Facts(e.type, (ints[0], ints[1], ints[2], ints[3], e.res, e.euid),
                 e.comm.encode("utf-8", KERNEL_TEXT_ERRORS)[:15], name, None,
                 loginuid_input(e.loginuid), sock)


def _sock_of_event(e: Event) -> Sock:
    """A socket record's view from a decoded event's args (what they show of it)."""
    a = e.args

    def num(key: str) -> int:
        v = a.get(key)
        return v if isinstance(v, int) else 0

    fam = num("family")

    def raw(key: str) -> bytes:
        v = a.get(key)
        if not isinstance(v, str) or fam not in (AF_INET, AF_INET6) or not v:
            return bytes(16)
        try:
            b = socket.inet_pton(socket.AF_INET if fam == AF_INET else socket.AF_INET6, v)
        except OSError:
            return bytes(16)
        return b.ljust(16, b"\0")

    upath = b""
    if fam == AF_UNIX and isinstance(a.get("addr"), str):
        upath = str(a["addr"]).encode("utf-8", KERNEL_TEXT_ERRORS)
    return Sock(fam, num("port"), num("sport"), num("sotype"), num("proto"), raw("addr"),
                raw("saddr"), upath)


def struct_ints(buf: bytes, off: int) -> tuple[int, int, int, int]:
    from sysward.events.types import INTS

    a, b, c, d = INTS.struct.unpack_from(buf, off)
    return a, b, c, d


__all__ = ["END_ABSENT", "END_PRESENT", "END_UNKNOWN", "Facts", "Sock", "decide", "end_of",
           "loginuid_input", "facts_from_event", "facts_from_record", "name_key", "path_key"]
