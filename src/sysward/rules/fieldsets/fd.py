"""``fd.*``: the file descriptor an event uses or creates, derived from the event's arguments.

sysward keeps no per-process descriptor table in the rule stage: the kernel side puts what a
rule needs into the event (the path of an open, the addresses of a connect/accept/dup, the
descriptor type of a dup's old fd).  So fd.* has a value on the events that name one:

- open/openat/openat2/creat: the opened path; ``fd.num`` is the result, or -1 when the open
  failed (as Falco reports failed opens); ``fd.typechar`` is ``d`` with O_DIRECTORY, else ``f``.
  A failed open made no descriptor: as in Falco, fd.name, fd.nameraw, fd.directory and
  fd.typechar still come from its arguments, while fd.filename, fd.type, fd.ino and fd.dev
  are missing.
- connect, accept/accept4, bind, listen, dup/dup2/dup3 of a socket: the addresses.  Falco's
  client/server roles: a connect's local end is the client, an accept's local end is the
  server; bind/listen only have a (server) local end; for a dup the end with the lower port
  is taken as the server (a heuristic: the event does not say who connected).
- socket: the new descriptor's number, type and protocol (no name yet).
- memfd_create: ``memfd:NAME``; setns/finit_module: the number only.
- fchmod, fchdir, fsetxattr, fremovexattr, ioctl: the number, and the path of the descriptor
  as the sensor resolved it (``EventType.fd_path``): fd.name, fd.directory, fd.filename.

Every other event has no fd: the fields are missing (None) as in Falco.

``fd.types`` is the exception: it describes the process's whole descriptor table, which
sysward does not keep.  Enrichment gives each live process a reader of /proc/<tid>/fd
(``Process.fds``, see sysward.enrich.fdtypes), called only when a condition reaches the field.
"""

from __future__ import annotations

import ipaddress
import posixpath
from functools import lru_cache
from typing import Any

from sysward.events.model import Event
from sysward.events.types import BY_NAME, EVENT_TYPES
from sysward.rules import render as r
from sysward.rules.fieldsets._events import (
    ACCEPT_TYPES,
    ARG_FD_TYPES,
    DUP_TYPES,
    OPEN_TYPES,
    RES_FD_TYPES,
    SOCKADDR_TYPES,
)
from sysward.rules.fieldtypes import (
    ArgKind,
    Extractor,
    FieldDef,
    FieldError,
    FieldType,
    Inline,
    simple,
)

S, N, B = FieldType.STRING, FieldType.INT, FieldType.BOOL
IP, NET, PORT = FieldType.IPADDR, FieldType.IPNET, FieldType.PORT

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_FAMILY_CHAR = {r.AF_INET: "4", r.AF_INET6: "6", r.AF_UNIX: "u", r.AF_NETLINK: "n"}
TYPE_NAMES = {
    "f": "file", "d": "directory", "4": "ipv4", "6": "ipv6", "u": "unix", "p": "pipe",
    "e": "event", "s": "signalfd", "l": "eventpoll", "i": "inotify", "t": "timerfd",
    "n": "netlink", "b": "bpf", "o": "unknown",
}
_FIXED_CHAR = {t.name: t.fd_type for t in EVENT_TYPES if t.fd_type is not None}
_SOCKET_TYPES = SOCKADDR_TYPES | {"socket"}
#: events on an existing descriptor whose path the sensor resolves (fchmod, fsetxattr, ioctl...)
_FD_PATH = {t.name: t.fd_path for t in EVENT_TYPES if t.fd_path is not None}


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normalize(path: str) -> str:
    """Falco's fd.name is a clean absolute path: resolve '.', '..' and doubled slashes."""
    if "/." not in path and "//" not in path:
        return path
    # a dot file (/root/.ssh/x) is clean already: normpath would return it unchanged, since
    # no component is '.' or '..', none is empty and there is no trailing slash
    if ("//" not in path and "/./" not in path and "/../" not in path
            and not path.endswith(("/.", "/..", "/")) and not path.startswith(("./", "../"))):
        return path
    clean = posixpath.normpath(path)
    return clean[1:] if clean.startswith("//") else clean


# --- endpoints -------------------------------------------------------------------------------
# (local addr, local port, remote addr, remote port, local end is the server)
Endpoints = tuple[Any, Any, Any, Any, bool]


def endpoints(e: Event) -> Endpoints | None:
    t = e.type
    if t not in SOCKADDR_TYPES:
        return None
    a = e.args
    role = BY_NAME[t].sock_role
    if role == "bound":
        return a.get("addr"), a.get("port"), None, None, True
    lport, rport = a.get("sport"), a.get("port")
    if role == "client":
        server_local = False
    elif role == "server":
        server_local = True
    else:  # dup of a socket: the role is not recorded; the lower port is the server's
        server_local = isinstance(lport, int) and isinstance(rport, int) and lport < rport
    return a.get("saddr"), lport, a.get("addr"), rport, server_local


def _family(e: Event) -> int | None:
    fam = e.args.get("domain" if e.type == "socket" else "family")
    if isinstance(fam, int):
        return fam
    if e.type in DUP_TYPES:
        return {"4": r.AF_INET, "6": r.AF_INET6, "u": r.AF_UNIX}.get(e.args.get("fd_type", ""))
    return None


def _fmt(addr: Any, port: Any) -> str:
    text = "" if addr is None else str(addr)
    if ":" in text:
        text = f"[{text}]"
    return f"{text}:{port if port is not None else 0}"


def tuple_name(e: Event) -> str | None:
    """Falco's socket fd.name: ``client:port->server:port``; a unix socket's path."""
    ep = endpoints(e)
    if ep is None:
        return None
    laddr, lport, raddr, rport, server_local = ep
    if _family(e) == r.AF_UNIX:
        path = raddr or laddr
        return str(path) if path else None
    if raddr is None:  # bind/listen: only the local end
        return _fmt(laddr, lport) if laddr is not None else None
    if server_local:
        return f"{_fmt(raddr, rport)}->{_fmt(laddr, lport)}"
    return f"{_fmt(laddr, lport)}->{_fmt(raddr, rport)}"


def _name(e: Event) -> str | None:
    t = e.type
    if t in OPEN_TYPES:
        name = e.args.get("name")
        return _normalize(name) if name else None
    if t in SOCKADDR_TYPES:
        return tuple_name(e)
    if t == "memfd_create":
        return "memfd:" + str(e.args.get("name", ""))
    key = _FD_PATH.get(t)
    if key is not None:
        return e.args.get(key) or None
    return None


def _nameraw(e: Event) -> str | None:
    if e.type in OPEN_TYPES:
        raw = e.args.get("nameraw")
        return raw if raw is not None else e.args.get("name")
    return _name(e)


def _typechar(e: Event) -> str | None:
    t = e.type
    if t in OPEN_TYPES:
        flags = e.args.get("flags") or 0
        if flags & r.O_DIRECTORY and flags & r.O_TMPFILE != r.O_TMPFILE:
            return "d"
        return "f"
    if t in DUP_TYPES:
        char = e.args.get("fd_type")
        return char if char else None
    if t in _SOCKET_TYPES:
        fam = _family(e)
        return _FAMILY_CHAR.get(fam, "o") if fam is not None else None
    return _FIXED_CHAR.get(t)


def _type(e: Event) -> str | None:
    if e.res < 0 and e.type in OPEN_TYPES:  # no descriptor was made (see _filename)
        return None
    char = _typechar(e)
    return None if char is None else TYPE_NAMES.get(char, "unknown")


def _num(e: Event) -> int | None:
    t = e.type
    if t in RES_FD_TYPES:
        return e.res if e.res >= 0 else -1
    if t in ARG_FD_TYPES:
        fd = e.args.get("fd")
        return fd if isinstance(fd, int) else None
    return None


def _directory(e: Event) -> str | None:
    if e.type not in OPEN_TYPES and e.type not in _FD_PATH:
        return None
    name = _name(e)
    if name is None:
        return None
    head = name.rpartition("/")[0]
    return head or "/"


def _filename(e: Event) -> str | None:
    # Falco: a failed open made no descriptor; fd.name and fd.directory are still read from
    # the syscall's arguments, fd.filename and fd.type are not (they need the descriptor)
    if e.type in _FD_PATH:
        name = _name(e)
        return name.rpartition("/")[2] if name is not None else None
    if e.type not in OPEN_TYPES or e.res < 0:
        return None
    name = _name(e)
    return name.rpartition("/")[2] if name is not None else None


def _l4proto(e: Event) -> str | None:
    t = e.type
    if t not in _SOCKET_TYPES:
        return None
    fam = _family(e)
    if fam not in (r.AF_INET, r.AF_INET6):
        return None
    a = e.args
    if t in ACCEPT_TYPES or t == "listen":
        return "tcp"
    kind = (a.get("type") if t == "socket" else a.get("sotype"))
    proto = a.get("proto")
    if proto in (1, 58):  # IPPROTO_ICMP / IPPROTO_ICMPV6
        return "icmp"
    if isinstance(kind, int):
        kind &= 0xF
        if kind == r.SOCK_STREAM:
            return "tcp"
        if kind == r.SOCK_DGRAM:
            return "udp"
        if kind == r.SOCK_RAW:
            return "raw"
    if proto == 6:
        return "tcp"
    if proto == 17:
        return "udp"
    return None


def _sockfamily(e: Event) -> str | None:
    if e.type not in _SOCKET_TYPES:
        return None
    fam = _family(e)
    if fam in (r.AF_INET, r.AF_INET6):
        return "ip"
    if fam == r.AF_UNIX:
        return "unix"
    return None


def _connected(e: Event) -> bool | None:
    t = e.type
    if t not in _SOCKET_TYPES:
        return None
    if t == "connect":
        return e.res >= 0
    return t in ACCEPT_TYPES or (t in DUP_TYPES and e.args.get("addr") is not None)


def _name_changed(e: Event) -> bool | None:
    if _num(e) is None and e.type not in SOCKADDR_TYPES:
        return None
    return e.type == "connect"


# --- addresses by role --------------------------------------------------------------------
# index into Endpoints of (addr, port) for each role, given "local end is the server"


def _role(which: str) -> tuple[Extractor, Extractor, Extractor]:
    """Extractors (ip, port, dns name) for the client/server/local/remote end."""

    def pick(ep: Endpoints) -> tuple[Any, Any, str]:
        laddr, lport, raddr, rport, server_local = ep
        local = which == "l" if which in ("l", "r") else (which == "s") == server_local
        if local:
            return laddr, lport, "saddr_name"
        return raddr, rport, "addr_name"

    # where the address of this end is, for the events whose roles are fixed
    by_role = {"client": "saddr" if which in ("c", "l") else "addr",
               "server": "saddr" if which in ("s", "l") else "addr",
               "bound": "addr" if which in ("s", "l") else None}
    fixed = {t.name: by_role[t.sock_role] for t in EVENT_TYPES if t.sock_role is not None}

    def ip(e: Event) -> IPAddress | None:
        t = e.type
        if t in fixed:
            key = fixed[t]
            addr = e.args.get(key) if key is not None else None
        else:
            ep = endpoints(e)
            if ep is None:
                return None
            addr = pick(ep)[0]
        return parse_ip(addr) if addr.__class__ is str else None

    def port(e: Event) -> int | None:
        ep = endpoints(e)
        if ep is None:
            return None
        addr, port_, _ = pick(ep)
        if not isinstance(addr, str) or parse_ip(addr) is None:
            return None
        return port_ if isinstance(port_, int) else None

    def dns(e: Event) -> str | None:
        ep = endpoints(e)
        if ep is None:
            return None
        name = e.args.get(pick(ep)[2])
        return name if isinstance(name, str) and name else None

    return ip, port, dns


_C, _S, _L, _R = (_role(w) for w in ("c", "s", "l", "r"))


def _both_ips(e: Event) -> tuple[IPAddress, ...]:
    # hot (fd.ip / fd.net in the outbound macros): read both ends straight from the args
    if e.type not in SOCKADDR_TYPES:
        return ()
    a = e.args
    raddr, laddr = a.get("addr"), a.get("saddr")
    rip = parse_ip(raddr) if raddr.__class__ is str else None
    lip = parse_ip(laddr) if laddr.__class__ is str else None
    if lip is None:
        return () if rip is None else (rip,)
    return (lip,) if rip is None else (lip, rip)


def _both_ports(e: Event) -> tuple[int, ...]:
    return tuple(p for p in (_C[1](e), _S[1](e)) if p is not None)


def _is_server(e: Event) -> bool | None:
    ep = endpoints(e)
    return None if ep is None else ep[4]



# --- the same values written out per event type (FieldDef.inline; see fields.Inline) ------
_NONE = Inline("None")


def _name_inline(_arg: Any, t: str) -> Inline | None:
    if t in OPEN_TYPES:
        return Inline("(($t if '/.' not in $t and '//' not in $t else $norm($t)) "
                      "if ($t := e.args.get('name')) else None)", {"norm": _normalize})
    if t in SOCKADDR_TYPES or t == "memfd_create":
        return None
    if t in _FD_PATH:
        return Inline("(e.args.get($k) or None)", {"k": _FD_PATH[t]})
    return _NONE


def _directory_inline(_arg: Any, t: str) -> Inline | None:
    if t in OPEN_TYPES or t in _FD_PATH:
        return Inline("(None if ($t := $(fd.name)) is None else ($t.rpartition('/')[0] or '/'))")
    return _NONE


def _filename_inline(_arg: Any, t: str) -> Inline | None:
    if t in _FD_PATH:
        return Inline("(None if ($t := $(fd.name)) is None else $t.rpartition('/')[2])")
    if t in OPEN_TYPES:
        return Inline("(None if e.res < 0 or ($t := $(fd.name)) is None "
                      "else $t.rpartition('/')[2])")
    return _NONE


def _num_inline(_arg: Any, t: str) -> Inline | None:
    if t in RES_FD_TYPES:
        return Inline("(e.res if e.res >= 0 else -1)")
    if t in ARG_FD_TYPES:
        return None
    return _NONE


def _typechar_inline(_arg: Any, t: str) -> Inline | None:
    if t in OPEN_TYPES:
        return Inline("('d' if ($t := e.args.get('flags') or 0) & $odir and "
                      "$t & $otmp != $otmp else 'f')",
                      {"odir": r.O_DIRECTORY, "otmp": r.O_TMPFILE})
    if t in DUP_TYPES:
        return Inline("(e.args.get('fd_type') or None)")
    if t in _SOCKET_TYPES:
        return Inline("(None if ($t := " + _family_src(t) + ") is None else $chars.get($t, 'o'))",
                      {"chars": _FAMILY_CHAR, "isinstance": isinstance})
    return Inline("$c", {"c": _FIXED_CHAR.get(t)})


def _family_src(t: str) -> str:
    """``_family`` written out for a socket event type that is not a dup (uses ``$t``)."""
    key = "domain" if t == "socket" else "family"
    return f"($t if $isinstance($t := e.args.get('{key}'), int) else None)"


def _sockfamily_inline(_arg: Any, t: str) -> Inline | None:
    if t not in _SOCKET_TYPES:
        return _NONE
    if t in DUP_TYPES:  # the family may come from the descriptor's type character
        return None
    return Inline("('ip' if ($t := " + _family_src(t) + ") in $ipfams else "
                  "'unix' if $t == $unix else None)",
                  {"ipfams": (r.AF_INET, r.AF_INET6), "unix": r.AF_UNIX,
                   "isinstance": isinstance})



def _types_factory(arg: Any) -> Extractor:
    """fd.types (every type open in the process) or fd.types[N] (descriptor N alone)."""
    fd: int | None = None
    if arg is not None:
        text = str(arg).strip()
        if not text.isdigit():
            raise FieldError(f"field 'fd.types' takes a descriptor number in brackets, e.g. "
                             f"fd.types[0] (got '{arg}').")
        fd = int(text)

    def types(e: Event) -> tuple[str, ...] | None:
        p = e.proc
        view = p.fds if p is not None else None
        return view.fd_types(e, fd) if view is not None else None

    return types


_FROM = ("open family, socket, connect/accept/bind/listen, dup, memfd_create events; the "
         "events on a descriptor whose path the sensor resolves (fchmod, fchdir, fsetxattr, "
         "fremovexattr, ioctl)")
_NET = "connect, accept, bind, listen and dup-of-socket events"
_DNS = ("only when the event carries addr_name/saddr_name (no DNS cache yet), so rules that "
        "compare it never fire from kernel events alone")

FIELDS: list[FieldDef] = [
    FieldDef("fd.num", N, "Descriptor number (-1 for a failed open).", simple(_num),
             availability=_FROM, inline=_num_inline),
    FieldDef("fd.type", S, "Descriptor type: file, directory, ipv4, ipv6, unix, netlink...",
             simple(_type), availability=_FROM),
    FieldDef("fd.types", FieldType.LIST,
             "Types of the descriptors the process has open, each once (file, directory, "
             "ipv4, ipv6, unix, pipe, event, signalfd, eventpoll, inotify, timerfd, netlink, "
             "bpf, userfaultfd, io_uring, memfd, pidfd, unknown); fd.types[N]: the type of "
             "descriptor N alone, missing when it is not open.", _types_factory,
             arg=ArgKind.KEY_OPTIONAL,
             availability="live processes, read from /proc/<tid>/fd when a rule evaluates it "
             "(the descriptors open then, a few ms after the event; 15-20 us per descriptor); "
             "missing for processes already gone and in replays"),
    FieldDef("fd.typechar", S,
             "Descriptor type as one character: f file, d directory, 4 / 6 IP socket, u unix, "
             "p pipe, n netlink, o other.", simple(_typechar), availability=_FROM,
             inline=_typechar_inline),
    FieldDef("fd.name", S,
             "Full name: the clean absolute path of a file, 'client:port->server:port' of an "
             "IP socket, the path of a unix socket.", simple(_name), availability=_FROM,
             inline=_name_inline),
    FieldDef("fd.nameraw", S, "Path as the process passed it (before '..' is resolved).",
             simple(_nameraw), availability="open family events"),
    FieldDef("fd.directory", S, "Directory of the opened file.", simple(_directory),
             availability="open family events and those on a resolved descriptor",
             inline=_directory_inline),
    FieldDef("fd.filename", S, "Base name of the opened file.", simple(_filename),
             availability="open family events and those on a resolved descriptor",
             inline=_filename_inline),
    FieldDef("fd.ino", N, "Inode number of the file, when the event carries it.",
             simple(lambda e: e.args.get("ino") if e.type in OPEN_TYPES and e.res >= 0 else None),
             availability="open events that carry 'ino'"),
    FieldDef("fd.dev", N, "Device number of the file, when the event carries it.",
             simple(lambda e: e.args.get("dev") if e.type in OPEN_TYPES and e.res >= 0 else None),
             availability="open events that carry 'dev'"),
    FieldDef("fd.sockfamily", S, "Socket family: 'ip' or 'unix'.", simple(_sockfamily),
             inline=_sockfamily_inline,
             availability=_NET),
    FieldDef("fd.l4proto", S, "Transport protocol of an IP socket: tcp, udp, icmp, raw.",
             simple(_l4proto), availability=_NET),
    FieldDef("fd.connected", B, "True when the socket is connected.", simple(_connected),
             availability=_NET),
    FieldDef("fd.name_changed", B, "True when this event changed the descriptor's name "
             "(a connect sets the tuple).", simple(_name_changed), availability=_FROM),
    FieldDef("fd.is_server", B, "True when the local end is the server end.",
             simple(_is_server), availability=_NET),
    FieldDef("fd.cip", IP, "Client IP address.", simple(_C[0]), availability=_NET),
    FieldDef("fd.sip", IP, "Server IP address.", simple(_S[0]), availability=_NET),
    FieldDef("fd.lip", IP, "Local IP address.", simple(_L[0]), availability=_NET),
    FieldDef("fd.rip", IP, "Remote IP address.", simple(_R[0]), availability=_NET),
    FieldDef("fd.cport", PORT, "Client port.", simple(_C[1]), availability=_NET),
    FieldDef("fd.sport", PORT, "Server port.", simple(_S[1]), availability=_NET),
    FieldDef("fd.lport", PORT, "Local port.", simple(_L[1]), availability=_NET),
    FieldDef("fd.rport", PORT, "Remote port.", simple(_R[1]), availability=_NET),
    FieldDef("fd.cnet", NET, "Client address, compared against a network (CIDR).",
             simple(_C[0]), availability=_NET),
    FieldDef("fd.snet", NET, "Server address, compared against a network (CIDR).",
             simple(_S[0]), availability=_NET),
    FieldDef("fd.lnet", NET, "Local address, compared against a network (CIDR).",
             simple(_L[0]), availability=_NET),
    FieldDef("fd.rnet", NET, "Remote address, compared against a network (CIDR).",
             simple(_R[0]), availability=_NET),
    FieldDef("fd.ip", IP, "Either end's IP address (filter only: true when client or server "
             "matches).", simple(_both_ips), multi=True, filter_only=True, availability=_NET),
    FieldDef("fd.port", PORT, "Either end's port (filter only: true when client or server "
             "matches).", simple(_both_ports), multi=True, filter_only=True,
             availability=_NET),
    FieldDef("fd.net", NET, "Either end's address against a network (filter only).",
             simple(_both_ips), multi=True, filter_only=True, availability=_NET),
    FieldDef("fd.cip.name", S, "DNS name of the client address.", simple(_C[2]),
             availability=_DNS),
    FieldDef("fd.sip.name", S, "DNS name of the server address.", simple(_S[2]),
             availability=_DNS),
    FieldDef("fd.lip.name", S, "DNS name of the local address.", simple(_L[2]),
             availability=_DNS),
    FieldDef("fd.rip.name", S, "DNS name of the remote address.", simple(_R[2]),
             availability=_DNS),
]
