"""BPF maps of a loaded object: sizes, lookups, updates, iteration."""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Iterator
from functools import cache
from typing import Protocol

from sysward.errors import SyswardError
from sysward.kernel.libbpf import (
    BPF_MAP_TYPE_RINGBUF,
    PERCPU_MAP_TYPES,
    BpfError,
    errno_text,
    last_errno,
    lib,
)

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2


@cache
def possible_cpus() -> int:
    """Number of possible CPUs: the number of values a per-CPU map holds for each key."""
    n = lib().libbpf_num_possible_cpus()
    if n <= 0:
        raise BpfError(f"cannot count possible CPUs: {errno_text(n)}", errno=-n)
    return int(n)


class MapOwner(Protocol):
    """What a map needs of the object that holds it (``sysward.kernel.object.BpfObject``):
    a map is only valid while its object is open, and only writable as the object allows."""

    @property
    def loaded(self) -> bool: ...

    def check_open(self) -> int:
        """The object's libbpf pointer; SyswardError when the object is closed."""
        ...


class BpfMap:
    """One map of a :class:`BpfObject`; valid while the object is open."""

    __slots__ = ("_obj", "_ptr", "name")

    def __init__(self, obj: MapOwner, ptr: int) -> None:
        self._obj = obj
        self._ptr = ptr
        self.name: str = lib().bpf_map__name(ptr).decode()

    def __repr__(self) -> str:
        return f"<BpfMap {self.name!r} type={self.type} max_entries={self.max_entries}>"

    # -- description -----------------------------------------------------------------------
    def _handle(self) -> int:
        self._obj.check_open()
        return self._ptr

    @property
    def fd(self) -> int:
        fd = int(lib().bpf_map__fd(self._handle()))
        if fd < 0:
            raise SyswardError(f"map '{self.name}' has no file descriptor: load the object first.")
        return fd

    @property
    def type(self) -> int:
        return int(lib().bpf_map__type(self._handle()))

    @property
    def key_size(self) -> int:
        return int(lib().bpf_map__key_size(self._handle()))

    @property
    def value_size(self) -> int:
        return int(lib().bpf_map__value_size(self._handle()))

    @property
    def max_entries(self) -> int:
        return int(lib().bpf_map__max_entries(self._handle()))

    @property
    def is_percpu(self) -> bool:
        return self.type in PERCPU_MAP_TYPES

    def set_max_entries(self, n: int) -> None:
        """Resize before load; for a ring buffer ``n`` is its size in bytes."""
        if self._obj.loaded:
            raise SyswardError(
                f"cannot resize map '{self.name}': the object is already loaded; "
                "call set_max_entries() before load()."
            )
        if self.type == BPF_MAP_TYPE_RINGBUF and not ring_size_ok(n):
            raise SyswardError(
                f"ring buffer '{self.name}' size {n} is invalid: it must be a power of two "
                f"of at least {_page_size()} bytes."
            )
        rc = lib().bpf_map__set_max_entries(self._handle(), n)
        if rc < 0:
            raise BpfError(
                f"setting max_entries of map '{self.name}' failed: {errno_text(rc)}", errno=-rc
            )

    # -- element access --------------------------------------------------------------------
    def _key(self, key: bytes) -> ctypes.Array[ctypes.c_char]:
        if len(key) != self.key_size:
            raise ValueError(
                f"map '{self.name}': key is {len(key)} bytes, expected {self.key_size}"
            )
        return ctypes.create_string_buffer(key, len(key))

    def _value_buf_size(self) -> int:
        if self.is_percpu:
            return ((self.value_size + 7) & ~7) * possible_cpus()
        return self.value_size

    def _raw_lookup(self, key: bytes) -> bytes | None:
        size = self._value_buf_size()
        value = ctypes.create_string_buffer(size)
        rc = lib().bpf_map_lookup_elem(self.fd, self._key(key), value)
        if rc < 0:
            err = -rc
            if err == errno.ENOENT:
                return None
            raise BpfError(f"lookup in map '{self.name}' failed: {errno_text(err)}", errno=err)
        return value.raw

    def lookup(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None when there is none."""
        if self.is_percpu:
            raise ValueError(f"map '{self.name}' is per-CPU: use lookup_percpu()")
        return self._raw_lookup(key)

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        """One value per possible CPU (empty list when the key is absent)."""
        if not self.is_percpu:
            raise ValueError(f"map '{self.name}' is not per-CPU: use lookup()")
        raw = self._raw_lookup(key)
        if raw is None:
            return []
        stride = (self.value_size + 7) & ~7
        vs = self.value_size
        return [raw[i * stride : i * stride + vs] for i in range(possible_cpus())]

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        want = self._value_buf_size()
        if len(value) != want:
            raise ValueError(f"map '{self.name}': value is {len(value)} bytes, expected {want}")
        buf = ctypes.create_string_buffer(value, len(value))
        rc = lib().bpf_map_update_elem(self.fd, self._key(key), buf, flags)
        if rc < 0:
            raise BpfError(f"update of map '{self.name}' failed: {errno_text(rc)}", errno=-rc)

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; False when it was not there."""
        rc = lib().bpf_map_delete_elem(self.fd, self._key(key))
        if rc < 0:
            if -rc == errno.ENOENT:
                return False
            raise BpfError(f"delete from map '{self.name}' failed: {errno_text(rc)}", errno=-rc)
        return True

    def keys(self) -> Iterator[bytes]:
        """Every key, in the kernel's order (a snapshot it is not: concurrent changes show)."""
        fd, size = self.fd, self.key_size
        cur = ctypes.create_string_buffer(size)
        nxt = ctypes.create_string_buffer(size)
        rc = lib().bpf_map_get_next_key(fd, None, nxt)
        while rc == 0:
            yield nxt.raw
            ctypes.memmove(cur, nxt, size)
            rc = lib().bpf_map_get_next_key(fd, cur, nxt)
        if -rc != errno.ENOENT:
            raise BpfError(
                f"iterating map '{self.name}' failed: {errno_text(rc or last_errno())}",
                errno=-rc,
            )


def ring_size_ok(n: int) -> bool:
    """Whether the kernel accepts ``n`` bytes as the size of a BPF ring buffer: a power of two
    of at least one page (the one check of the sensor's, the config's and this map's sizes)."""
    return n >= _page_size() and n & (n - 1) == 0


@cache
def _page_size() -> int:
    import mmap

    return mmap.PAGESIZE
