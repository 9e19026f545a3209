"""``proc.*`` and ``thread.*``: the process behind an event and its ancestors.

Values come from the event header first (pid, comm, tty: what the kernel saw at syscall
exit), then from ``event.proc`` (enrichment's Process, with its ``.parent`` chain), and for
execve events from the exec's own arguments (argv, filename, cwd, env, exe_flags, caps) when
enrichment did not give them.  Falco semantics kept here:

- ``proc.cmdline`` is ``proc.name`` (the comm, not argv[0]) followed by the arguments.
- ``proc.cwd`` ends with '/'.
- ``proc.aname[0]`` is the process itself, ``[1]`` its parent...; without an index the field
  is filter-only and matches when any ancestor (parent upwards) matches.
- pid-namespace views (vpid, vtid, vpgid) equal the host values for host processes and are
  missing for container processes unless enrichment provides them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sysward.events.model import EXE_FROM_MEMFD, EXE_UPPER_LAYER, Event, Process
from sysward.rules import render as r
from sysward.rules.fieldsets._events import EXEC_TYPES
from sysward.rules.fieldtypes import (
    ArgKind,
    Extractor,
    FieldDef,
    FieldType,
    Inline,
    no_value,
    simple,
)

S, N, B = FieldType.STRING, FieldType.INT, FieldType.BOOL
RELTIME, ABSTIME = FieldType.RELTIME, FieldType.ABSTIME

MAX_ANCESTORS = 64  # bounds walks up a (possibly malformed) parent chain

# --- the process itself ------------------------------------------------------------------------


def _proc_or_exec_list(e: Event, key: str) -> list[str] | None:
    """Process.<key> from the process context, else the exec event's own args[key]."""
    p = e.proc
    value = getattr(p, key) if p is not None else None
    if value:
        return value  # type: ignore[no-any-return]
    if e.type in EXEC_TYPES:
        return e.args.get(key) or None
    return None


def _argv(e: Event) -> list[str] | None:
    return _proc_or_exec_list(e, "argv")


def _name(e: Event) -> str | None:
    if e.comm:
        return e.comm
    p = e.proc
    return p.comm if p is not None and p.comm else None


def _exe(e: Event) -> str | None:
    argv = _argv(e)
    return argv[0] if argv else None


def _exepath(e: Event) -> str | None:
    p = e.proc
    if p is not None and p.exepath:
        return p.exepath
    if e.type in EXEC_TYPES:
        return e.args.get("filename") or None
    return None


def _args(e: Event) -> str | None:
    argv = _argv(e)
    if argv is None:
        return "" if _name(e) is not None else None
    return " ".join(argv[1:])


def _cmdline(e: Event) -> str | None:
    name = _name(e)
    if name is None:
        return None
    argv = _argv(e)
    return name + " " + " ".join(argv[1:]) if argv and len(argv) > 1 else name


def _exeline(e: Event) -> str | None:
    argv = _argv(e)
    return " ".join(argv) if argv else None


def _cwd(e: Event) -> str | None:
    p = e.proc
    cwd = p.cwd if p is not None and p.cwd else None
    if cwd is None and e.type in EXEC_TYPES:
        cwd = e.args.get("cwd") or None
    if cwd is None:
        return None
    return cwd if cwd.endswith("/") else cwd + "/"


def _env_list(e: Event) -> list[str] | None:
    return _proc_or_exec_list(e, "env")


def _env_factory(arg: Any) -> Extractor:
    if arg is None:
        def whole(e: Event) -> str | None:
            env = _env_list(e)
            return " ".join(env) if env is not None else None

        return whole
    prefix = f"{arg}="

    def one(e: Event) -> str | None:
        for item in _env_list(e) or ():
            if item.startswith(prefix):
                return item[len(prefix):]
        return None

    return one


def _pid(e: Event) -> int | None:
    if e.pid:
        return e.pid
    return e.proc.pid if e.proc is not None else None


def _ppid(e: Event) -> int | None:
    if e.ppid:
        return e.ppid
    return e.proc.ppid if e.proc is not None and e.proc.ppid else None


def _is_host(e: Event) -> bool:
    p = e.proc
    return p is None or p.container_id == "host"


def _vpid(e: Event) -> int | None:
    if _is_host(e):
        return _pid(e)
    vpid = getattr(e.proc, "vpid", None)
    return vpid if isinstance(vpid, int) and vpid else None


def _tty(e: Event) -> int:
    if e.tty:
        return e.tty
    return e.proc.tty if e.proc is not None else 0


def _start(e: Event) -> int:
    if e.start_time:
        return e.start_time
    return e.proc.start_time if e.proc is not None else 0


def _duration(e: Event) -> int | None:
    start = _start(e)
    return e.ts - start if start else None


def _exe_flags(e: Event) -> int | None:
    if e.type in EXEC_TYPES:
        flags = e.args.get("exe_flags")
        if isinstance(flags, int):
            return flags
    return e.proc.exe_flags if e.proc is not None else None


def exe_flag(bit: int) -> Extractor:
    """A bit of the executable's flags (sw_exec.exe_flags): of the exec itself, else the
    process's last exec."""
    def extract(e: Event) -> bool | None:
        flags = _exe_flags(e)
        return None if flags is None else bool(flags & bit)

    return extract


def _session_leader(e: Event) -> Process | None:
    """The process with pid == sid, else the eldest ancestor that shares the sid."""
    p = e.proc
    if p is None or not p.sid:
        return None
    sid, depth = p.sid, 0
    found: Process | None = None
    node: Process | None = p
    while node is not None and depth < MAX_ANCESTORS:
        if node.sid != sid:
            break
        found = node
        if node.pid == sid:
            break
        node, depth = node.parent, depth + 1
    return found


def _sname(e: Event) -> str | None:
    leader = _session_leader(e)
    return leader.comm or None if leader is not None else None


def _leader_flag(attr: str) -> Extractor:
    def extract(e: Event) -> bool | None:
        p = e.proc
        if p is None or not getattr(p, attr):
            return None
        return bool(getattr(p, attr) == (p.pid or e.pid))

    return extract


# --- ancestors ------------------------------------------------------------------------------


def _pcomm(p: Process) -> str | None:
    return p.comm or None


def _pexe(p: Process) -> str | None:
    return p.argv[0] if p.argv else None


def _pexepath(p: Process) -> str | None:
    return p.exepath or None


def _pcmd(p: Process) -> str | None:
    if not p.comm:
        return None
    return p.comm + " " + " ".join(p.argv[1:]) if len(p.argv) > 1 else p.comm


def _ppid_of(p: Process) -> int | None:
    return p.pid or None


# proc.aname[0] is the process itself; read it the way proc.name etc. do
_SELF: dict[str, Extractor] = {"name": _name, "exe": _exe, "exepath": _exepath,
                               "cmdline": _cmdline, "pid": _pid}
_OF: dict[str, Callable[[Process], Any]] = {"name": _pcomm, "exe": _pexe, "exepath": _pexepath,
                                            "cmdline": _pcmd, "pid": _ppid_of}


def _ancestor(e: Event, level: int) -> Process | None:
    p = e.proc
    while p is not None and level > 0:
        p = p.parent
        level -= 1
    return p


def _ancestry(what: str) -> Callable[[Any], Extractor]:
    of, self_ = _OF[what], _SELF[what]

    def factory(level: Any) -> Extractor:
        if level is None:
            def any_ancestor(e: Event) -> tuple[Any, ...]:
                out = []
                p = e.proc.parent if e.proc is not None else None
                depth = 0
                while p is not None and depth < MAX_ANCESTORS:
                    value = of(p)
                    if value is not None:
                        out.append(value)
                    p, depth = p.parent, depth + 1
                return tuple(out)

            return any_ancestor
        if level == 0:
            return self_
        if level == 1:
            def parent(e: Event) -> Any:
                p = e.proc
                if p is None or p.parent is None:
                    return None
                return of(p.parent)

            return parent

        def nth(e: Event) -> Any:
            p = _ancestor(e, level)
            return None if p is None else of(p)

        return nth

    return factory


def _parent(what: str) -> Callable[[Any], Extractor]:
    return lambda _arg: _ancestry(what)(1)


# --- written out for the rule compiler (FieldDef.inline; see fields.Inline) -----------------
_NAME_INLINE = Inline("(e.comm or $name(e))", {"name": _name})
_PNAME_INLINE = Inline("(None if ($t := e.proc) is None or ($t := $t.parent) is None "
                       "else ($t.comm or None))")


def _aname_inline(level: Any, _t: str) -> Inline | None:
    if level == 0:
        return _NAME_INLINE
    if level == 1:
        return _PNAME_INLINE
    if not isinstance(level, int) or level > 8:
        return None
    # the walk of _ancestor written out, one step per level
    steps = " or ".join(["($t := e.proc) is None"] + ["($t := $t.parent) is None"] * level)
    return Inline(f"(None if {steps} else ($t.comm or None))")


def _argv_src(t: str) -> str:
    """``_argv`` written out for events of type ``t`` (uses ``$t``)."""
    if t in EXEC_TYPES:
        return "((($t := e.proc) is not None and $t.argv) or e.args.get('argv') or None)"
    return "(($t := e.proc) is not None and $t.argv or None)"


def _exe_inline(_arg: Any, t: str) -> Inline:
    return Inline(f"($t[0] if ($t := {_argv_src(t)}) else None)")


def _cmdline_inline(_arg: Any, t: str) -> Inline:
    return Inline(f"(None if $(proc.name) is None else ($(proc.name) + ' ' + ' '.join($t[1:]) "
                  f"if ($t := {_argv_src(t)}) and len($t) > 1 else $(proc.name)))")


def _parent_duration(e: Event) -> int | None:
    parent = _ancestor(e, 1)
    return e.ts - parent.start_time if parent is not None and parent.start_time else None


# --- thread ---------------------------------------------------------------------------------
_CAP_EVENTS = EXEC_TYPES | {"capset"}


def _caps(attr: str) -> Extractor:
    def extract(e: Event) -> str | None:
        if e.type in _CAP_EVENTS:
            value = e.args.get(attr)
            if isinstance(value, int):
                return r.render_caps(value)
        p = e.proc
        return r.render_caps(getattr(p, attr)) if p is not None else None

    return extract


def _vtid(e: Event) -> int | None:
    if _is_host(e):
        return e.tid or _pid(e)
    vtid = getattr(e.proc, "vtid", None)
    return vtid if isinstance(vtid, int) and vtid else None




_P = "event header, then enrichment (event.proc)"
_E = "enrichment (event.proc); execve arguments for exec events"
_A = "enrichment's parent chain (event.proc.parent...)"
_NO = "never: sysward does not capture it yet (missing, as in Falco without the data)"
_NS = "host processes; container processes only when enrichment knows the namespace view"
_T = ("event header: the kernel's count of the thread group's live threads at the event "
      "(0 in captures made before sysward recorded it)")

FIELDS: list[FieldDef] = [
    FieldDef("proc.pid", N, "Process id (thread group id).", simple(_pid), availability=_P),
    FieldDef("proc.ppid", N, "Parent process id.", simple(_ppid), availability=_P),
    FieldDef("proc.vpid", N, "Process id as seen in its own pid namespace.", simple(_vpid),
             availability=_NS),
    FieldDef("proc.name", S, "Process name: the kernel's comm (at most 15 characters).",
             simple(_name), availability=_P, inline=lambda _arg, _t: _NAME_INLINE),
    FieldDef("proc.exe", S, "First command line argument (argv[0]).", simple(_exe),
             availability=_E, inline=_exe_inline),
    FieldDef("proc.exepath", S, "Full path of the executable.", simple(_exepath),
             availability=_E),
    FieldDef("proc.args", S, "Command line arguments after argv[0], space separated.",
             simple(_args), availability=_E),
    FieldDef("proc.cmdline", S, "proc.name followed by proc.args.", simple(_cmdline),
             availability=_E, inline=_cmdline_inline),
    FieldDef("proc.exeline", S, "proc.exe followed by proc.args.", simple(_exeline),
             availability=_E),
    FieldDef("proc.cmdnargs", N, "Number of command line arguments after argv[0].",
             simple(lambda e: len(a) - 1 if (a := _argv(e)) else None), availability=_E),
    FieldDef("proc.cmdlenargs", N, "Total length of the arguments after argv[0].",
             simple(lambda e: sum(map(len, a[1:])) if (a := _argv(e)) else None),
             availability=_E),
    FieldDef("proc.cwd", S, "Current working directory, ending with '/'.", simple(_cwd),
             availability=_E),
    FieldDef("proc.env", S, "Environment: all 'K=V' entries space separated, or one value "
             "with proc.env[NAME].", _env_factory, arg=ArgKind.KEY_OPTIONAL,
             availability=_E + " (bounded; empty when not captured)"),
    FieldDef("proc.tty", N, "Controlling terminal device number, 0 when none.",
             simple(_tty), availability=_P),
    FieldDef("proc.sid", N, "Session id.", simple(lambda e: e.proc.sid if e.proc else None),
             availability=_E),
    FieldDef("proc.sname", S, "Name of the session leader (pid == sid, or the eldest "
             "ancestor in the same session).", simple(_sname), availability=_A),
    FieldDef("proc.is_sid_leader", B, "True when the process leads its session.",
             simple(_leader_flag("sid")), availability=_E),
    FieldDef("proc.pgid", N, "Process group id (as the host sees it).",
             simple(lambda e: e.proc.pgid or None if e.proc else None),
             availability=_E + " (read from /proc at start, inherited at fork: a later "
             "setpgid, as job-control shells do, is not seen)"),
    FieldDef("proc.is_pgid_leader", B, "True when the process leads its process group.",
             simple(_leader_flag("pgid")), availability=_E),
    FieldDef("proc.vpgid", N, "Process group id (as seen in the pid namespace).",
             simple(lambda e: e.proc.pgid or None if e.proc and _is_host(e) else None),
             availability=_NS),
    FieldDef("proc.is_vpgid_leader", B, "True when the process leads its process group.",
             simple(_leader_flag("pgid")), availability=_E),
    FieldDef("proc.nthreads", N, "Number of live threads of the process, the main thread "
             "included while it lives (0 at procexit: no thread is left).",
             simple(lambda e: e.nthreads), availability=_T),
    FieldDef("proc.nchilds", N, "Number of live threads of the process other than the main "
             "thread (threads, not child processes, as in Falco).",
             simple(lambda e: e.nchilds), availability=_T),
    FieldDef("proc.duration", RELTIME, "Nanoseconds since the process started.",
             simple(_duration), availability=_P),
    FieldDef("proc.pid.ts", ABSTIME, "Process start time, ns since the epoch.",
             simple(lambda e: _start(e) or None), availability=_P),
    FieldDef("proc.ppid.duration", RELTIME, "Nanoseconds since the parent started.",
             simple(_parent_duration), availability=_A),
    FieldDef("proc.ppid.ts", ABSTIME, "Parent start time, ns since the epoch.",
             simple(lambda e: p.start_time or None if (p := _ancestor(e, 1)) else None),
             availability=_A),
    FieldDef("proc.pname", S, "Name of the parent process.", _parent("name"),
             availability=_A, inline=lambda _arg, _t: _PNAME_INLINE),
    FieldDef("proc.pexe", S, "argv[0] of the parent process.", _parent("exe"),
             availability=_A),
    FieldDef("proc.pexepath", S, "Executable path of the parent process.", _parent("exepath"),
             availability=_A),
    FieldDef("proc.pcmdline", S, "Command line (name + args) of the parent process.",
             _parent("cmdline"), availability=_A),
    FieldDef("proc.aname", S, "Name of an ancestor: [0] self, [1] parent, [2] grandparent...; "
             "without index (filter only) any ancestor.", _ancestry("name"),
             arg=ArgKind.INDEX, availability=_A, inline=_aname_inline),
    FieldDef("proc.apid", N, "Pid of an ancestor; without index, any ancestor.",
             _ancestry("pid"), arg=ArgKind.INDEX, availability=_A),
    FieldDef("proc.aexe", S, "argv[0] of an ancestor; without index, any ancestor.",
             _ancestry("exe"), arg=ArgKind.INDEX, availability=_A),
    FieldDef("proc.aexepath", S, "Executable path of an ancestor; without index, any ancestor.",
             _ancestry("exepath"), arg=ArgKind.INDEX, availability=_A),
    FieldDef("proc.acmdline", S, "Command line of an ancestor; without index, any ancestor.",
             _ancestry("cmdline"), arg=ArgKind.INDEX, availability=_A),
    FieldDef("proc.is_exe_upper_layer", B, "True when the executable lives in the upper "
             "(writable) layer of an overlayfs: written after the container started.",
             simple(exe_flag(EXE_UPPER_LAYER)), availability=_E),
    FieldDef("proc.is_exe_from_memfd", B, "True when the executable is a memfd "
             "(fileless execution).", simple(exe_flag(EXE_FROM_MEMFD)), availability=_E),
    FieldDef("proc.exe_ino", N, "Inode number of the executable.", no_value, availability=_NO),
    FieldDef("proc.exe_ino.ctime", ABSTIME, "Status change time of the executable's inode.",
             no_value, availability=_NO),
    FieldDef("proc.exe_ino.mtime", ABSTIME, "Modification time of the executable's inode.",
             no_value, availability=_NO),
    FieldDef("proc.exe_ino.ctime_duration_proc_start", ABSTIME,
             "Nanoseconds between the executable's ctime and the process start.", no_value,
             availability=_NO),
    FieldDef("proc.exe_ino.ctime_duration_pidns_start", ABSTIME,
             "Nanoseconds between the pid namespace start and the executable's ctime.", no_value,
             availability=_NO),
    FieldDef("proc.pidns_init_start_ts", ABSTIME, "Start time of the pid namespace's init.",
             no_value, availability=_NO),
    FieldDef("thread.tid", N, "Thread id.", simple(lambda e: e.tid or _pid(e)),
             availability=_P),
    FieldDef("thread.vtid", N, "Thread id as seen in its pid namespace.", simple(_vtid),
             availability=_NS),
    FieldDef("thread.ismain", B, "True for the main thread (tid == pid).",
             simple(lambda e: not e.tid or e.tid == _pid(e)), availability=_P),
    FieldDef("thread.cap_effective", S, "Effective capabilities, names separated by spaces "
             "(CAP_SYS_ADMIN ...).", simple(_caps("cap_effective")),
             availability="capset/execve arguments, else enrichment"),
    FieldDef("thread.cap_permitted", S, "Permitted capabilities, names separated by spaces.",
             simple(_caps("cap_permitted")),
             availability="capset/execve arguments, else enrichment"),
    FieldDef("thread.cap_inheritable", S, "Inheritable capabilities, names separated by "
             "spaces.", simple(_caps("cap_inheritable")),
             availability="capset/execve arguments, else enrichment"),
]
