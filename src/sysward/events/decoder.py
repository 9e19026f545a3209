"""Kernel records -> ``Event``: the decoder, driven by the table in ``sysward.events.types``.

A record is ``sw_header | payload | variable tail`` (bpf/abi.h).  The header and each payload
layout are unpacked with a precompiled ``struct.Struct``; each event type has a small decode
plan prepared once (which slot becomes which argument), so decoding a record is a few
``unpack_from`` calls and a dict.  ``decode_batch`` takes the list a ring-buffer drain hands
over and returns the events; a record that fails to decode is never raised: it is counted in
``errors`` and, per type, in ``errors_by_type`` (with ``last_error`` saying why), and the
first failure of each type is logged with its traceback.
"""

from __future__ import annotations

import logging
import posixpath
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from sysward.events.model import Event
from sysward.events.text import KERNEL_TEXT_ERRORS
from sysward.events.types import (
    BY_ID,
    EXEC,
    F_TRUNCATED,
    HEADER,
    INTS,
    LEADER_ALIVE_SHIFT,
    SOCK,
    STRS,
    THREADS_SHIFT,
    EventType,
    ExeFlag,
    KConst,
)

_HDR = HEADER.struct
_HDR_SIZE = HEADER.size
_TYPE_OFF = HEADER.offsets()["type"][0]
_TYPE_AT = struct.Struct("<H")  # sw_header.type, read alone to name a record that failed
_log = logging.getLogger(__name__)
_INTS = INTS.struct
_STRS = STRS.struct
_SOCK = SOCK.struct
_EXEC = EXEC.struct
_AF_UNIX, _AF_INET, _AF_INET6 = 1, 2, 10
_EXE_WRITTEN = int(ExeFlag.EXE_WRITTEN)

PayloadDecoder = Callable[[bytes, int], dict[str, Any]]


def boot_to_epoch_offset() -> int:
    """ns to add to a CLOCK_BOOTTIME timestamp to get ns since the Unix epoch."""
    # Read the two clocks back to back, taking the tightest of a few tries.
    best = None
    for _ in range(5):
        t0 = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        wall = time.time_ns()
        t1 = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, wall - (t0 + t1) // 2)
    assert best is not None
    return best[1]


def _text(raw: bytes) -> str:
    """A NUL-terminated C string as text (invalid UTF-8 kept as surrogate escapes, never raised)."""
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    return raw.decode("utf-8", KERNEL_TEXT_ERRORS)


def dentry_path(raw: bytes) -> str:
    """A "dentry path" (components leaf first, each NUL-terminated) as an absolute path."""
    if not raw:
        return ""
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    parts.reverse()
    return "/" + "/".join(p.decode("utf-8", KERNEL_TEXT_ERRORS) for p in parts)


def join_path(name: bytes, dir_raw: bytes) -> str:
    """A path argument: the user string, made absolute with its dir when it was relative."""
    text = _text(name)
    if not dir_raw:
        return text
    base = dentry_path(dir_raw)
    if not text:
        return base
    if text.startswith("/"):
        return text
    return posixpath.normpath(posixpath.join(base, text))


def string_list(raw: bytes) -> list[str]:
    """NUL-separated strings (argv, env) as a list; a missing final NUL is tolerated."""
    if not raw:
        return []
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return [s.decode("utf-8", KERNEL_TEXT_ERRORS) for s in raw.split(b"\0")]


def ip_text(family: int, raw: bytes, upath: str = "") -> str:
    if family == _AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if family == _AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[:16])
    if family == _AF_UNIX:
        return upath
    return ""


# ---------------------------------------------------------------------------- payload plans


def _ints_plan(et: EventType) -> PayloadDecoder:
    pairs = tuple((name, i) for i, name in enumerate(et.ints) if name)
    unpack = _INTS.unpack_from

    def decode(buf: bytes, off: int) -> dict[str, Any]:
        vals = unpack(buf, off)
        return {name: vals[i] for name, i in pairs}

    if et.name == "procexit":

        def decode_exit(buf: bytes, off: int) -> dict[str, Any]:
            args = decode(buf, off)
            args["core"] = bool(args["core"])
            return args

        return decode_exit
    return decode


def _strs_plan(et: EventType) -> PayloadDecoder:
    pairs = tuple((name, i) for i, name in enumerate(et.ints) if name)
    strs = et.strs
    unpack = _STRS.unpack_from
    tail0 = STRS.size

    def decode(buf: bytes, off: int) -> dict[str, Any]:
        vals = unpack(buf, off)
        args: dict[str, Any] = {}
        pos = off + tail0
        for k, name in enumerate(strs):
            nl = vals[3 + 2 * k]
            dl = vals[4 + 2 * k]
            args[name] = join_path(buf[pos : pos + nl], buf[pos + nl : pos + nl + dl])
            pos += nl + dl
        for name, i in pairs:
            args[name] = vals[i]
        return args

    if et.name == "ioctl":
        return _ioctl_plan(decode, unpack)
    if len(strs) != 1:
        return decode
    (sname,) = strs

    # One path argument (open family, unlink, chmod, mkdir...: most of all records): the
    # same result without the loop, and an absolute path (no dir part) decoded in place.
    def decode_one(buf: bytes, off: int) -> dict[str, Any]:
        vals = unpack(buf, off)
        pos = off + tail0
        nl = vals[3]
        dl = vals[4]
        if dl:
            text = join_path(buf[pos : pos + nl], buf[pos + nl : pos + nl + dl])
        else:
            end = buf.find(b"\0", pos, pos + nl)
            text = buf[pos : end if end >= 0 else pos + nl].decode("utf-8", KERNEL_TEXT_ERRORS)
        args: dict[str, Any] = {sname: text}
        for name, i in pairs:
            args[name] = vals[i]
        return args

    return decode_one


_OLD_KNOWN = int(KConst.IOCTL_OLD_KNOWN)


def _ioctl_plan(decode: PayloadDecoder, unpack: Callable[[bytes, int], tuple[Any, ...]],
                ) -> PayloadDecoder:
    """ioctl's i2 is two words (bpf/abi.h, enum sw_kconst): the new attribute flags, and the
    flags the inode had at entry (None when the entry was not seen)."""

    def decode_ioctl(buf: bytes, off: int) -> dict[str, Any]:
        args = decode(buf, off)
        packed = unpack(buf, off)[2] & 0xFFFF_FFFF_FFFF_FFFF
        args["flags"] = packed & 0xFFFF_FFFF
        old = packed >> 32
        args["oldflags"] = old & ~_OLD_KNOWN if old & _OLD_KNOWN else None
        return args

    return decode_ioctl


def _sock_plan(et: EventType) -> PayloadDecoder:
    keys = et.sock
    unpack = _SOCK.unpack_from

    def decode(buf: bytes, off: int) -> dict[str, Any]:
        (fd, i1, i2, addr, saddr, family, port, sport, sotype, proto, fd_type, upath_len, _,
         upath_raw, _) = unpack(buf, off)
        upath = upath_raw[:upath_len].split(b"\0", 1)[0].decode("utf-8", KERNEL_TEXT_ERRORS)
        full = {
            "fd": fd, "i1": i1, "i2": i2, "family": family, "port": port, "sport": sport,
            "sotype": sotype, "proto": proto,
            "fd_type": chr(fd_type) if fd_type else "",
            "addr": ip_text(family, addr, upath),
            "saddr": ip_text(family, saddr) if family != _AF_UNIX else "",
        }
        return {out: full[src] for out, src in keys}

    return decode


def stdio_list(ino: tuple[int, ...], rdev: tuple[int, ...], types: bytes, sock_fd: int,
               sock: dict[str, Any]) -> list[dict[str, Any] | None]:
    """fds 0..2 of an exec: None when closed, else their type character and inode (and the
    device number of a device, the addresses of a socket: those of ``sock_fd`` for every fd
    on the same socket)."""
    out: list[dict[str, Any] | None] = []
    sock_ino = ino[sock_fd] if sock_fd < len(ino) else None
    for i, code in enumerate(types):
        if not code:
            out.append(None)
            continue
        fd: dict[str, Any] = {"typechar": chr(code), "ino": ino[i]}
        if rdev[i]:
            fd["rdev"] = rdev[i]
        if sock_ino is not None and ino[i] == sock_ino:
            fd.update(sock)
        out.append(fd)
    return out


def _exec_plan(et: EventType) -> PayloadDecoder:
    unpack = _EXEC.unpack_from
    tail0 = EXEC.size
    is_at = et.name == "execveat"

    def decode(buf: bytes, off: int) -> dict[str, Any]:
        (cap_e, cap_p, cap_i, dirfd, flags, exe_flags, fl, fdl, al, el, cl, argv_trunc,
         env_trunc, ino0, ino1, ino2, rdev0, rdev1, rdev2, types, sock_fd, saddr_peer,
         saddr_local, family, port, sport, _, writer) = unpack(buf, off)
        pos = off + tail0
        filename = join_path(buf[pos : pos + fl], buf[pos + fl : pos + fl + fdl])
        pos += fl + fdl
        argv = string_list(buf[pos : pos + al])
        pos += al
        env = string_list(buf[pos : pos + el])
        pos += el
        cwd = dentry_path(buf[pos : pos + cl])
        args: dict[str, Any] = {
            "filename": filename, "argv": argv, "argv_truncated": bool(argv_trunc),
        }
        if el or env_trunc:
            args["env"] = env
            args["env_truncated"] = bool(env_trunc)
        args["cwd"] = cwd
        args["exe_flags"] = exe_flags
        args["cap_effective"] = cap_e
        args["cap_permitted"] = cap_p
        args["cap_inheritable"] = cap_i
        sock: dict[str, Any] = {}
        if sock_fd < len(types):
            sock = {"family": family}
            if family != _AF_UNIX:  # a unix socket's path is not read
                sock.update(addr=ip_text(family, saddr_peer), port=port,
                            saddr=ip_text(family, saddr_local), sport=sport)
        args["stdio"] = stdio_list((ino0, ino1, ino2), (rdev0, rdev1, rdev2), types, sock_fd,
                                   sock)
        if exe_flags & _EXE_WRITTEN:
            args["exe_writer"] = _text(writer)
        if is_at:
            args["dirfd"] = dirfd
            args["flags"] = flags
        return args

    return decode


_PLANS = {INTS.name: _ints_plan, STRS.name: _strs_plan, SOCK.name: _sock_plan,
          EXEC.name: _exec_plan}


class Decoder:
    """Decodes sensor records into events; keeps the boot-to-epoch offset and a sequence."""

    __slots__ = ("_plans", "_comms", "boot_offset", "num", "errors", "decoded",
                 "errors_by_type", "last_error")

    #: bound of the comm cache (raw 16-byte field -> text); a handful of names cover most
    #: records, and the bound keeps a stream of random names from growing it
    COMM_CACHE_MAX = 4096

    def __init__(self, boot_offset: int | None = None) -> None:
        self.boot_offset = boot_to_epoch_offset() if boot_offset is None else boot_offset
        self._plans: dict[int, tuple[str, int, PayloadDecoder]] = {
            et.id: (et.name, et.layout.size, _PLANS[et.layout.name](et)) for et in BY_ID.values()
        }
        self._comms: dict[bytes, str] = {}
        self.num = 0  # last sequence number given (Falco's evt.num)
        self.errors = 0  # records that could not be decoded (counted, skipped)
        #: the same, per event type ("unknown" when the header names no type of the table)
        self.errors_by_type: dict[str, int] = {}
        #: per event type, what went wrong the last time ("ValueError: short record")
        self.last_error: dict[str, str] = {}
        self.decoded = 0

    def decode(self, rec: bytes) -> Event | None:
        """One record -> an Event, or None (counted in ``errors``) when it is malformed."""
        out = self.decode_batch([rec])
        return out[0] if out else None

    def decode_batch(self, records: list[bytes]) -> list[Event]:
        """Decode a drained batch; malformed records are skipped and counted.

        The per-record work is written out in this one loop (no call per record besides
        the payload plan and ``Event``), with the decoder's state kept in locals.
        """
        out: list[Event] = []
        append = out.append
        plans = self._plans
        comms = self._comms
        unpack_hdr = _HDR.unpack_from
        boot = self.boot_offset
        num = self.num
        errors = 0
        tshift, lshift = THREADS_SHIFT, LEADER_ALIVE_SHIFT
        for rec in records:
            try:
                (ts, cgroup_id, start_time, res, size, type_id, cpu, pid, tid, ppid, uid, gid,
                 euid, egid, loginuid, pidns, mntns, tty, flags, comm) = unpack_hdr(rec, 0)
                name, psize, plan = plans[type_id]
                if len(rec) < _HDR_SIZE + psize:
                    raise ValueError("short record")
                args = plan(rec, _HDR_SIZE)
            except Exception as exc:  # noqa: BLE001 (a record must never stop the pipeline)
                errors += 1
                self._record_error(rec, exc)
                continue
            if flags & F_TRUNCATED:
                args["truncated"] = True
            text = comms.get(comm)
            if text is None:
                end = comm.find(b"\0")
                text = (comm[:end] if end >= 0 else comm).decode("utf-8", KERNEL_TEXT_ERRORS)
                if len(comms) >= self.COMM_CACHE_MAX:
                    comms.clear()
                comms[comm] = text
            num += 1
            nthreads = flags >> tshift
            append(Event(
                ts + boot, name, pid, tid, ppid, uid, gid, euid, egid, loginuid, text,
                cgroup_id, pidns, mntns, tty, start_time + boot if start_time else 0, res, args,
                num, cpu, nthreads, nthreads - (flags >> lshift & 1),
            ))
        self.num = num
        self.errors += errors
        self.decoded += len(out)
        return out

    def _record_error(self, rec: bytes, exc: Exception) -> None:
        """Count a record that failed to decode under its type, and say why, once per type.

        Off the hot path: only failed records come here.  A malformed record from the kernel
        and a bug in a decode plan both land here; the first of each type is logged with its
        traceback so neither goes unnoticed, the rest are counted.
        """
        name = "unknown"
        if len(rec) >= _HDR_SIZE:
            plan = self._plans.get(_TYPE_AT.unpack_from(rec, _TYPE_OFF)[0])
            if plan is not None:
                name = plan[0]
        first = name not in self.errors_by_type
        self.errors_by_type[name] = self.errors_by_type.get(name, 0) + 1
        self.last_error[name] = f"{type(exc).__name__}: {exc}"
        if first:
            _log.warning("cannot decode a %s record of %d bytes (counted in "
                         "sysward_decoder_errors_total; later ones are only counted)",
                         name, len(rec), exc_info=exc)
