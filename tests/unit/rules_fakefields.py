"""A small stand-in field registry for the rule-engine tests.

The engine only needs ``resolve(name, arg) -> BoundField`` (name, type, extract, render,
multi).  These fields read plain attributes of hand-built events, so the engine's operators,
missing-value semantics and type checks are tested independently of the real registry
(which has its own tests).  Unknown names raise ValueError, like the real FieldError.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sysward.rules.fieldtypes import UnknownFieldError


class FakeType(Enum):
    STRING = "string"
    INT = "int"
    BOOL = "bool"
    IPADDR = "ipaddr"
    IPNET = "ipnet"
    PORT = "port"
    LIST = "list"


@dataclass(frozen=True)
class FakeBound:
    name: str
    type: FakeType
    extract: Callable[[Any], Any]
    render: Callable[[Any], str]
    multi: bool = False


def _plain(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def _arg_text(key: str) -> Callable[[Any], str | None]:
    def extract(e: Any) -> str | None:
        value = e.args.get(key)
        return None if value is None else str(value)
    return extract


def _arg(key: str) -> Callable[[Any], Any]:
    def get(e: Any) -> Any:
        return e.args.get(key)
    return get


def _proc(attr: str, default: Any = None) -> Callable[[Any], Any]:
    def get(e: Any) -> Any:
        p = e.proc
        if p is None:
            return default
        v = getattr(p, attr)
        return v if v not in ("", None) else default
    return get


def _ancestor(n: int) -> Callable[[Any], Any]:
    def get(e: Any) -> Any:
        p = e.proc
        for _ in range(n):
            if p is None:
                return None
            p = p.parent
        return p.comm if p is not None else None
    return get


def _ancestors(e: Any) -> tuple[str, ...]:
    out = []
    p = e.proc.parent if e.proc is not None else None
    while p is not None:
        out.append(p.comm)
        p = p.parent
    return tuple(out)


def _ip(key: str) -> Callable[[Any], Any]:
    def get(e: Any) -> Any:
        v = e.args.get(key)
        return ipaddress.ip_address(v) if v else None
    return get


def _flags_render(v: int) -> str:
    names = [n for n, b in (("O_WRONLY", 1), ("O_RDWR", 2), ("O_CREAT", 64), ("O_TRUNC", 512))
             if v & b]
    return "|".join(names) if names else "O_RDONLY"


S, N, B, IP, NET, L = (FakeType.STRING, FakeType.INT, FakeType.BOOL, FakeType.IPADDR,
                       FakeType.IPNET, FakeType.LIST)

FIELDS: dict[str, tuple[FakeType, Callable[[Any], Any]]] = {
    "evt.type": (S, lambda e: e.type),
    "evt.num": (N, lambda e: e.num),
    "evt.rawres": (N, lambda e: e.res),
    "evt.res": (S, lambda e: "SUCCESS" if e.res >= 0 else "ENOENT"),
    "evt.is_open_read": (B, lambda e: e.args.get("flags", 0) & 3 != 1 if "flags" in e.args
                         else None),
    "proc.name": (S, _proc("comm")),
    "proc.exe": (S, lambda e: e.proc.exe if e.proc else None),
    "proc.exepath": (S, _proc("exepath")),
    "proc.cmdline": (S, lambda e: " ".join([e.proc.comm, *e.proc.argv[1:]]) if e.proc else None),
    "proc.pname": (S, _ancestor(1)),
    "proc.pid": (N, lambda e: e.pid),
    "proc.tty": (N, lambda e: e.tty),
    "proc.args": (L, lambda e: tuple(e.proc.argv[1:]) if e.proc else None),  # a LIST for tests
    "proc.env": (L, _proc("env")),
    "fd.name": (S, _arg("name")),
    "fd.num": (N, lambda e: e.res if e.type.startswith("open") else None),
    "fd.typechar": (S, lambda e: "f" if e.type.startswith("open") else None),
    "fd.sip": (IP, _ip("saddr")),
    "fd.dip": (IP, _ip("addr")),
    "fd.snet": (NET, _ip("saddr")),
    "fd.sport": (FakeType.PORT, _arg("sport")),
    "user.name": (S, _proc("user")),
    "user.uid": (N, lambda e: e.uid),
    "container.id": (S, lambda e: e.proc.container_id if e.proc else None),
    "container.privileged": (B, lambda e: e.args.get("privileged")),
    "k8s.ns.name": (S, lambda e: None),
}


def resolve(name: str, arg: str | None = None) -> FakeBound:
    if name == "proc.aname" or name == "proc.aname" + "":
        if arg is None:
            return FakeBound(name, S, _ancestors, _plain, multi=True)
        if not arg.isdigit():
            raise ValueError(f"field 'proc.aname' needs a number in brackets (got '{arg}')")
        return FakeBound(f"{name}[{arg}]", S, _ancestor(int(arg)), _plain)
    if name.startswith("evt.arg.") or (name == "evt.arg" and arg):
        key = arg if arg else name[len("evt.arg."):]
        if key == "flags":
            return FakeBound(name, N, _arg(key), _flags_render)
        return FakeBound(name, S, _arg_text(key), _plain)
    if arg is not None:
        raise ValueError(f"field '{name}' takes no argument (got '{arg}')")
    spec = FIELDS.get(name)
    if spec is None:
        raise UnknownFieldError(f"unknown field '{name}'")
    return FakeBound(name, spec[0], spec[1], _plain)


class FakeRegistry:
    resolve = staticmethod(resolve)


REGISTRY = FakeRegistry()
