"""``evt.*``: the event itself: type, result, time, and its arguments rendered as Falco does.

sysward reports each syscall once, at exit, with the arguments saved at entry, so ``evt.dir``
is always ``<`` and ``evt.arg.X`` finds both Falco's enter and exit parameters.  Where Falco
names a parameter differently from docs/events.md, the alias table below maps it (execve's
``flags`` is our ``exe_flags``, ``fd`` of open/socket/accept is the result, unlink's ``path``
is our ``name``).
"""

from __future__ import annotations

import socket as _socket
import time as _time
from collections.abc import Callable
from functools import cache
from typing import Any

from sysward.alert import format_clock, format_time
from sysward.events.model import Event
from sysward.events.types import BY_FALCO_NAME, EVENT_TYPES
from sysward.rules import render as r
from sysward.rules.fieldsets._events import (
    EXEC_TYPES,
    OPEN_TYPES,
)
from sysward.rules.fieldsets._names import group_name, user_name
from sysward.rules.fieldsets.fd import tuple_name
from sysward.rules.fieldtypes import ArgKind, Extractor, FieldDef, FieldType, Inline, simple

S, N, B = FieldType.STRING, FieldType.INT, FieldType.BOOL

# --- argument aliases: Falco parameter name -> {event type: getter} -----------------------


def _res(e: Event) -> Any:
    return e.res


def _argv0(e: Event) -> Any:
    argv = e.args.get("argv")
    return argv[0] if argv else None


def _argv_rest(e: Event) -> Any:
    argv = e.args.get("argv")
    return " ".join(argv[1:]) if argv is not None else None


def _exe_flags(e: Event) -> Any:
    return e.args.get("exe_flags")


def _unlink_path(e: Event) -> Any:
    return e.args.get("name")


_FD_RES: dict[str, Callable[[Event], Any]] = {
    t.name: _res for t in EVENT_TYPES if t.res_arg == "fd"}
ALIASES: dict[str, dict[str, Callable[[Event], Any]]] = {
    "fd": _FD_RES,
    "flags": {t: _exe_flags for t in EXEC_TYPES},
    "exe": {t: _argv0 for t in EXEC_TYPES},
    "args": {t: _argv_rest for t in EXEC_TYPES},
    "path": {"unlink": _unlink_path},
    "tuple": {t.name: tuple_name for t in EVENT_TYPES if t.sock_role in ("client", "server")},
}


def raw_arg(e: Event, name: str) -> Any:
    """The raw value of Falco's parameter ``name`` on this event, or None."""
    if name == "res":
        return e.res
    alias = ALIASES.get(name)
    if alias is not None:
        getter = alias.get(e.type)
        if getter is not None:
            return getter(e)
    return e.args.get(name)


# --- argument rendering --------------------------------------------------------------------


def _uid_name(value: int) -> str:
    return user_name(value) or str(value)


def _gid_name(value: int) -> str:
    return group_name(value) or str(value)


def _render_res(value: int) -> str:
    return str(value) if value >= 0 else r.render_res(value)


# the flag sets of the event table (EventType.flags) and how each renders
_FLAG_SETS: dict[str, Callable[[int], str]] = {
    "open_flags": r.render_open_flags,
    "exe_flags": r.render_exe_flags,
    "clone_flags": r.render_clone_flags,
    "ns_flags": r.render_ns_flags,
    "mount_flags": r.render_mount_flags,
    "umount_flags": r.render_umount_flags,
    "memfd_flags": r.render_memfd_flags,
    "at_flags": r.render_at_flags,
    "rename_flags": r.render_rename_flags,
    "dup3_flags": r.render_dup3_flags,
    "sock_flags": r.render_sock_flags,
    "xattr_flags": r.render_xattr_flags,
    "inode_flags": r.render_inode_flags,
}
_FLAGS_BY_TYPE: dict[str, Callable[[int], str]] = {
    name: _FLAG_SETS[t.flags] for name, t in BY_FALCO_NAME.items() if t.flags is not None}
_BY_NAME: dict[str, Callable[[int], str]] = {
    "mode": r.render_file_mode,
    "request": r.render_ptrace_request,
    "domain": r.render_socket_family,
    "family": r.render_socket_family,
    "sotype": r.render_socket_type,
    "cmd": r.render_bpf_cmd,
    "sig": r.render_signal,
    "signal": r.render_signal,
    "nstype": r.render_ns_flags,
    "res": _render_res,
    "cap_effective": r.render_caps,
    "cap_permitted": r.render_caps,
    "cap_inheritable": r.render_caps,
    "option": r.render_prctl_option,
    "oldflags": r.render_inode_flags,
    **{n: _uid_name for n in ("uid", "ruid", "euid", "suid")},
    **{n: _gid_name for n in ("gid", "rgid", "egid", "sgid")},
}
_BY_TYPE_AND_NAME: dict[tuple[str, str], Callable[[int], str]] = {
    ("socket", "type"): r.render_socket_type,
    ("ioctl", "request"): r.render_ioctl_request,
    **{(t, "flags"): fn for t, fn in _FLAGS_BY_TYPE.items()},
    # setns(2) nstype and unshare flags share the namespace table; kill-style pid is a pid
}


def render_arg(etype: str, name: str, value: Any) -> str:
    """Falco's printed form of one argument value."""
    if value is None:
        return "<NA>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        fn = _BY_TYPE_AND_NAME.get((etype, name)) or _BY_NAME.get(name)
        return fn(value) if fn is not None else str(value)
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _arg_extractor(arg: Any) -> Extractor:
    if isinstance(arg, int):
        index = arg

        def by_index(e: Event) -> str | None:
            if index == 0:
                return _render_res(e.res)
            if index > len(e.args):
                return None
            name = list(e.args)[index - 1]
            return render_arg(e.type, name, e.args[name])

        return by_index
    name = str(arg)
    alias = ALIASES.get(name)
    by_type = {(t): fn for (t, n), fn in _BY_TYPE_AND_NAME.items() if n == name}
    default = _BY_NAME.get(name)
    args_get = dict.get

    def by_name(e: Event) -> str | None:
        if alias is not None and e.type in alias:
            value = alias[e.type](e)
        elif name == "res":
            value = e.res
        else:
            value = args_get(e.args, name)
        if value is None:
            return None
        if value.__class__ is int:
            fn = by_type.get(e.type, default)
            return fn(value) if fn is not None else str(value)
        if value.__class__ is str:
            return value
        return render_arg(e.type, name, value)

    return by_name


def _arg_inline(arg: Any, t: str) -> Inline | None:
    """evt.arg.NAME on a type where NAME is a plain argument: ``by_name`` written out."""
    if isinstance(arg, int) or arg is None:
        return None
    name = str(arg)
    alias = ALIASES.get(name)
    if name == "res" or (alias is not None and t in alias):
        return None
    fn = _BY_TYPE_AND_NAME.get((t, name)) or _BY_NAME.get(name) or str
    return Inline("(None if ($t := e.args.get($name)) is None else ($fn($t) if $t.__class__ is "
                  "int else ($t if $t.__class__ is str else $render($type, $name, $t))))",
                  {"name": name, "fn": fn, "render": render_arg, "type": t})


_NUMERIC_ARGS = frozenset({
    "res", "fd", "flags", "mode", "uid", "gid", "ruid", "euid", "suid", "rgid", "egid", "sgid",
    "pid", "tid", "domain", "proto", "request", "cmd", "sig", "signal", "port", "sport",
    "family", "dirfd", "oldfd", "newfd", "backlog", "status", "nstype", "exe_flags",
    "cap_effective", "cap_permitted", "cap_inheritable", "sotype", "size", "option",
    "arg2_int", "oldflags",
})


def _rawarg_extractor(arg: Any) -> Extractor:
    name = str(arg)
    numeric = name in _NUMERIC_ARGS

    def extract(e: Event) -> Any:
        value = raw_arg(e, name)
        if numeric and value.__class__ is not int:
            return value if isinstance(value, int) else None
        return value

    return extract


def _args(e: Event) -> str:
    parts = [f"res={_render_res(e.res)}"]
    for name, value in e.args.items():
        text = render_arg(e.type, name, value)
        if isinstance(value, int) and not isinstance(value, bool) and text != str(value):
            text = f"{value}({text})"
        parts.append(f"{name}={text}")
    return " ".join(parts)


# --- open classification (Falco: open/openat/openat2 only; false for every other event) --------


def _open_flags(e: Event) -> int | None:
    if e.type not in OPEN_TYPES:
        return None
    if e.type == "creat":  # creat(2) is open(O_CREAT|O_WRONLY|O_TRUNC)
        return r.O_CREAT | r.O_WRONLY | (r._O["O_TRUNC"] or 0o1000)
    flags = e.args.get("flags")
    return flags if isinstance(flags, int) else 0


def _is_open_read(e: Event) -> bool:
    # hot: written out rather than through _open_flags
    t = e.type
    if t not in OPEN_TYPES or t == "creat":
        return False
    flags = e.args.get("flags", 0)
    return flags.__class__ is not int or flags & r.O_ACCMODE != r.O_WRONLY


def _is_open_write(e: Event) -> bool:
    t = e.type
    if t not in OPEN_TYPES:
        return False
    if t == "creat":
        return True
    flags = e.args.get("flags", 0)
    return flags.__class__ is int and flags & r.O_ACCMODE in (r.O_WRONLY, r.O_RDWR)


def _is_open_read_inline(_arg: Any, t: str) -> Inline:
    if t in OPEN_TYPES and t != "creat":
        return Inline("(($t := e.args.get('flags', 0)).__class__ is not int or "
                      "$t & $acc != $wronly)", {"acc": r.O_ACCMODE, "wronly": r.O_WRONLY})
    return Inline("False")


def _is_open_write_inline(_arg: Any, t: str) -> Inline:
    if t == "creat":
        return Inline("True")
    if t in OPEN_TYPES:
        return Inline("(($t := e.args.get('flags', 0)).__class__ is int and $t & $acc in $rw)",
                      {"acc": r.O_ACCMODE, "rw": (r.O_WRONLY, r.O_RDWR)})
    return Inline("False")


def _inline(expr: str) -> Callable[[Any, str], Inline]:
    spec = Inline(expr)
    return lambda _arg, _t: spec


def _is_open_exec(e: Event) -> bool:
    flags = _open_flags(e)
    if flags is None or not flags & r.O_CREAT:
        return False
    mode = e.args.get("mode")
    return isinstance(mode, int) and bool(mode & r.MODE_EXEC_BITS)


def _is_open_create(e: Event) -> bool:
    flags = _open_flags(e)
    return flags is not None and bool(flags & r.O_CREAT)


# --- time ------------------------------------------------------------------------------------


def _datetime(ns: int, nanos: bool) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    text = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(secs))
    return f"{text}.{frac:09d}" if nanos else text


@cache
def _hostname() -> str:
    return _socket.gethostname()


def _const(value: Any) -> Callable[[Any], Extractor]:
    def factory(_arg: Any) -> Extractor:
        return lambda e: value

    return factory



_EVT = "from the event header (docs/events.md)"
_ARGS = "from the event's arguments"

# --- counting fields (Falco's evt.count*: 1 when the event is of the kind, for charts and
# aggregations; missing otherwise so that "evt.count.error = 1" selects the errors) ----------
_FAMILY = {t.name: t.family for t in EVENT_TYPES}
_SYSCALL = {t.name: t.syscall_name for t in EVENT_TYPES}
_COUNT_FAMILY = {"file": "file", "net": "network"}


def _count_error(family: str | None) -> Extractor:
    def count(e: Event) -> int | None:
        if e.res >= 0:
            return None
        fam = _FAMILY.get(e.type)
        if family is None:
            return 1
        if family == "other":
            return 1 if fam not in _COUNT_FAMILY.values() else None
        return 1 if fam == family else None

    return count


_COUNTS = "every event (sysward reports syscalls at exit)"

FIELDS: list[FieldDef] = [
    FieldDef("evt.count", N, "1 for every event (to count events).", _const(1),
             availability=_COUNTS),
    FieldDef("evt.count.error", N, "1 for an event that returned an error.",
             simple(_count_error(None)), availability=_COUNTS),
    FieldDef("evt.count.error.file", N, "1 for a file syscall that returned an error.",
             simple(_count_error("file")), availability=_COUNTS),
    FieldDef("evt.count.error.net", N, "1 for a network syscall that returned an error.",
             simple(_count_error("network")), availability=_COUNTS),
    FieldDef("evt.count.error.memory", N, "1 for a memory syscall that returned an error "
             "(sysward captures none: always missing).", _const(None), availability="never"),
    FieldDef("evt.count.error.other", N, "1 for any other syscall that returned an error.",
             simple(_count_error("other")), availability=_COUNTS),
    FieldDef("evt.count.exit", N, "1 for an exit event: every sysward event.", _const(1),
             availability=_COUNTS),
    FieldDef("syscall.type", S, "The system call behind the event (missing for procexit, "
             "which is no system call).", simple(lambda e: _SYSCALL.get(e.type)),
             availability=_EVT),
    FieldDef("evt.num", N, "Sequence number of the event, given by the reader.",
             simple(lambda e: e.num), availability=_EVT, inline=_inline("e.num")),
    FieldDef("evt.type", S, "Event type: the syscall name (execve, openat, connect...).",
             simple(lambda e: e.type), availability=_EVT),
    FieldDef("evt.dir", S, "Direction: always '<' (sysward reports each syscall once, at exit).",
             _const("<"), availability="constant"),
    FieldDef("evt.res", S, "Result as text: SUCCESS when >= 0, else the errno name (ENOENT).",
             simple(lambda e: r.render_res(e.res)), availability=_EVT),
    FieldDef("evt.rawres", N, "Result as a number: >= 0 on success, -errno on failure.",
             simple(lambda e: e.res), availability=_EVT, inline=_inline("e.res")),
    FieldDef("evt.failed", B, "True when the syscall returned an error.",
             simple(lambda e: e.res < 0), availability=_EVT),
    FieldDef("evt.cpu", N, "CPU the event was recorded on.", simple(lambda e: e.cpu),
             availability=_EVT),
    FieldDef("evt.time", S, "Local time of the event, HH:MM:SS.nnnnnnnnn.",
             simple(lambda e: format_clock(e.ts)), availability=_EVT),
    FieldDef("evt.time.s", S, "Local time of the event, HH:MM:SS.",
             simple(lambda e: format_clock(e.ts)[:8]), availability=_EVT),
    FieldDef("evt.time.iso8601", S, "UTC time of the event, ISO 8601 with nanoseconds.",
             simple(lambda e: format_time(e.ts)), availability=_EVT),
    FieldDef("evt.datetime", S, "Local date and time of the event, with nanoseconds.",
             simple(lambda e: _datetime(e.ts, True)), availability=_EVT),
    FieldDef("evt.datetime.s", S, "Local date and time of the event, whole seconds.",
             simple(lambda e: _datetime(e.ts, False)), availability=_EVT),
    FieldDef("evt.rawtime", FieldType.ABSTIME, "Time of the event, ns since the epoch.",
             simple(lambda e: e.ts), availability=_EVT),
    FieldDef("evt.rawtime.s", N, "Time of the event, whole seconds since the epoch.",
             simple(lambda e: e.ts // 1_000_000_000), availability=_EVT),
    FieldDef("evt.rawtime.ns", N, "Nanosecond part of the event time.",
             simple(lambda e: e.ts % 1_000_000_000), availability=_EVT),
    FieldDef("evt.is_open_read", B,
             "True for an open/openat/openat2/creat whose access mode allows reading.",
             simple(_is_open_read), availability=_ARGS, inline=_is_open_read_inline),
    FieldDef("evt.is_open_write", B,
             "True for an open/openat/openat2/creat whose access mode allows writing.",
             simple(_is_open_write), availability=_ARGS, inline=_is_open_write_inline),
    FieldDef("evt.is_open_exec", B,
             "True for an open family event that creates a file with an execute bit in its mode.",
             simple(_is_open_exec), availability=_ARGS),
    FieldDef("evt.is_open_create", B, "True for an open family event with O_CREAT.",
             simple(_is_open_create), availability=_ARGS),
    FieldDef("evt.arg", S,
             "One argument, rendered as Falco prints it: evt.arg.NAME by name, evt.arg[N] by "
             "position (0 is the result, then the arguments in docs/events.md order).",
             _arg_extractor, arg=ArgKind.ARG, availability=_ARGS, inline=_arg_inline),
    FieldDef("evt.rawarg", S,
             "One argument as its raw value (numbers stay numbers): evt.rawarg.NAME.",
             _rawarg_extractor, arg=ArgKind.KEY, availability=_ARGS,
             type_for=lambda arg: N if str(arg) in _NUMERIC_ARGS else S),
    FieldDef("evt.args", S, "All arguments as 'name=value' pairs; symbolic values as N(NAME).",
             simple(_args), availability=_ARGS),
    FieldDef("evt.buffer", S, "I/O buffer of read/write events: sysward records none.",
             _const(None), availability="never (no read/write payloads are captured)"),
    FieldDef("evt.hostname", S, "Name of the host the agent runs on.",
             simple(lambda e: _hostname()), availability="this host"),
    FieldDef("evt.source", S, "Event source: always 'syscall'.", _const("syscall"),
             availability="constant"),
]

