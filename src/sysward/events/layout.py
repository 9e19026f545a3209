"""C struct layouts mirrored from the BPF headers, and the constant enums beside them.

One mechanism for both wire formats (bpf/abi.h for the sensors, bpf/enforce.h for the
enforcement unit): a ``Layout`` lists a struct's fields in declaration order with their
``struct`` codes, and derives the format string, the size and every field offset from that
list, so no format string or offset is ever written by hand.  An ``AbiEnum`` names the C
enum an IntEnum (or IntFlag) mirrors and the prefix of its constants.  tests/unit/test_abi.py
compares both with the BTF of the compiled objects (sizes, offsets, padding, every constant's
value).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class Layout:
    """One C struct: (field name, struct code) in declaration order.

    The codes are little-endian standard sizes without alignment ("<"): the headers pad by
    hand with explicit fields, so the Python offsets are the C offsets (the ABI test rejects
    padding the compiler would insert on its own).  An array field is a repeat count and a
    code ("16Q"); a byte array is "Ns".
    """

    name: str
    fields: tuple[tuple[str, str], ...]
    struct: struct.Struct = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "struct", struct.Struct("<" + "".join(c for _, c in self.fields)))

    @property
    def size(self) -> int:
        return self.struct.size

    def offsets(self) -> dict[str, tuple[int, int]]:
        """field name -> (byte offset, byte size)"""
        out: dict[str, tuple[int, int]] = {}
        off = 0
        for name, code in self.fields:
            size = struct.calcsize("<" + code)
            out[name] = (off, size)
            off += size
        return out

    def index(self, name: str) -> int:
        return [n for n, _ in self.fields].index(name)

    def pack(self, *values: Any) -> bytes:
        return self.struct.pack(*values)

    def unpack(self, buf: bytes | bytearray | memoryview) -> tuple[Any, ...]:
        return self.struct.unpack(buf)

    def unpack_from(self, buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Any, ...]:
        return self.struct.unpack_from(buf, offset)


@dataclass(frozen=True)
class AbiEnum:
    """A C enum and its Python mirror: constant ``prefix + member.name`` has ``member.value``.

    ``extra`` lists constants of the C enum that have no member (a ``*_MAX`` bound), with the
    value Python uses for them.
    """

    c_name: str
    mirror: type[Enum]
    prefix: str
    extra: tuple[tuple[str, int], ...] = ()

    def values(self) -> dict[str, int]:
        """The C constants this mirror stands for, by C name."""
        # __members__, not iteration: equal values (two bounds of 4096) are aliases in Python
        out = {self.prefix + name: int(m.value) for name, m in self.mirror.__members__.items()}
        out.update(self.extra)
        return out
