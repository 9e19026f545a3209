"""The event and process model every stage shares.

``Event`` is what the decoder produces from kernel bytes and what ``sysward events`` writes as
one JSON object per line (docs/events.md is the reference for every field); ``replay`` reads
the same lines back.  ``Process`` is what enrichment knows about the process behind an event;
the rule engine's proc.*/user.*/container.* fields read it through ``Event.proc``.

Both are plain slotted classes: they are created for every event on the hot path, so they
must stay cheap (no validation, no properties doing I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from sysward.events.text import printable_tree
from sysward.events.types import ExeFlag

#: login uid of a process that never logged in (the kernel's (uid_t)-1)
NO_LOGINUID = 0xFFFFFFFF

# Bits of Process.exe_flags / execve args["exe_flags"]: enum sw_exe_flag of bpf/abi.h, as
# plain ints (they travel in JSON and in the process table)
EXE_FROM_MEMFD = int(ExeFlag.EXE_FROM_MEMFD)  # the executable is a memfd (fileless execution)
EXE_UPPER_LAYER = int(ExeFlag.EXE_UPPER_LAYER)  # in the upper (writable) layer of an overlayfs
EXE_DELETED = int(ExeFlag.EXE_DELETED)  # the executable file has no links left

# Header keys, in the order they are written.  Everything else of an event lives in ``args``.
HEADER_FIELDS: tuple[str, ...] = (
    "ts", "num", "type", "cpu", "pid", "tid", "ppid", "uid", "gid", "euid", "egid",
    "loginuid", "comm", "cgroup_id", "pidns", "mntns", "tty", "start_time", "res",
    "nthreads", "nchilds",
)


@dataclass(frozen=True, slots=True)
class ContainerMeta:
    """What the container runtime says about a container (and, under Kubernetes, its pod).

    Immutable: enrichment replaces the whole record in one reference store, so a reader on
    another thread sees either the old record or the new one, never half of each.
    """

    name: str = ""
    image: str = ""  # the reference the container was started from: repo[:tag][@digest]
    image_id: str = ""  # 64 hex digits, no "sha256:" prefix
    image_digest: str = ""  # "sha256:<hex>" of the repository digest, when known
    labels: Mapping[str, str] = field(default_factory=dict)
    privileged: bool | None = None
    start_ts: int = 0  # wall-clock ns since the epoch
    pod_name: str = ""
    pod_uid: str = ""
    pod_namespace: str = ""
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    excluded: bool = False  # outside the configured scope (filters.namespaces / labels)


@dataclass(slots=True)
class ContainerInfo:
    """One container, shared by every process that runs in it.

    ``meta`` stays None while the runtime has not answered yet: an event is never held back
    for it, and the fields read whatever is known when they are evaluated.
    """

    id: str  # the full id (64 hex digits)
    runtime: str = ""  # docker | containerd | cri-o | podman | kubernetes | unknown
    meta: ContainerMeta | None = None


class FdTypes(Protocol):
    """Where the types of a live process's open descriptors can be read (fd.types).

    Enrichment hands its one reader to the processes it knows on this machine (live mode);
    processes of a replayed capture have none, so fd.types is missing for them.
    """

    def fd_types(self, event: Event, fd: int | None) -> tuple[str, ...] | None:
        """The distinct types of the descriptors open in the process of ``event`` (or of
        descriptor ``fd`` alone), or None when they cannot be read (the process is gone)."""
        ...


@dataclass(slots=True, weakref_slot=True)
class Process:
    """What is known about one process (thread group).  Missing facts are "" or 0.

    Weak references are allowed so that the process table can still find an exited process
    that something else (a live child's ``parent`` link, an event in flight) keeps alive,
    without keeping it alive itself.
    """

    pid: int
    ppid: int = 0
    comm: str = ""  # proc.name: the kernel's task comm (at most 15 characters)
    exepath: str = ""  # proc.exepath: absolute path of the executable
    argv: list[str] = field(default_factory=list)  # argv[0] is proc.exe, argv[1:] proc.args
    cwd: str = ""
    uid: int = 0
    gid: int = 0
    euid: int = 0
    egid: int = 0
    loginuid: int = NO_LOGINUID
    user: str = ""  # user name of uid ("" when unknown)
    group: str = ""  # group name of gid
    loginname: str = ""  # user name of loginuid
    tty: int = 0  # controlling tty device number, 0 when none
    sid: int = 0
    pgid: int = 0
    start_time: int = 0  # wall-clock ns since the epoch
    exe_flags: int = 0  # EXE_* bits
    cap_effective: int = 0
    cap_permitted: int = 0
    cap_inheritable: int = 0
    env: list[str] = field(default_factory=list)  # bounded; the agent keeps what rules read
    cgroup: str = ""  # cgroup path (v2, or the v1 hierarchy that names the container)
    container_id: str = "host"  # 12-hex short id, or "host" for host processes
    container_name: str = ""
    container_image: str = ""
    container: ContainerInfo | None = field(default=None, repr=False, compare=False)
    pidns: int = 0
    mntns: int = 0
    exit_time: int = 0  # 0 while alive
    #: fds 0..2 as the last exec saw them (execve args["stdio"]: None when closed, else
    #: typechar, ino, rdev, socket addresses); inherited at fork; None when not known
    stdio: list[dict[str, Any] | None] | None = None
    parent: Process | None = field(default=None, repr=False, compare=False)
    #: the exec'd process whose stdout is this one's stdin pipe / whose stdin is this one's
    #: stdout pipe, as known when either side exec'd (enrich/pipes.py)
    stdin_writer: Process | None = field(default=None, repr=False, compare=False)
    stdout_reader: Process | None = field(default=None, repr=False, compare=False)
    #: the reader of its open descriptors' types (shared by all live processes); not a fact
    fds: FdTypes | None = field(default=None, repr=False, compare=False)
    #: what the process table charged for this entry (its estimate, in bytes); not a fact
    table_bytes: int = field(default=0, repr=False, compare=False)

    @property
    def exe(self) -> str:
        return self.argv[0] if self.argv else self.comm


@dataclass(slots=True)
class Event:
    """One security event, reported once at syscall exit with arguments and result."""

    ts: int  # wall-clock ns since the epoch
    type: str  # Falco's event type name: "execve", "openat", "connect", ...
    pid: int = 0
    tid: int = 0
    ppid: int = 0
    uid: int = 0
    gid: int = 0
    euid: int = 0
    egid: int = 0
    loginuid: int = NO_LOGINUID
    comm: str = ""
    cgroup_id: int = 0
    pidns: int = 0
    mntns: int = 0
    tty: int = 0
    start_time: int = 0  # process start, wall-clock ns since the epoch
    res: int = 0  # syscall result: >= 0 success (fd, pid, ...), -errno on failure
    args: dict[str, Any] = field(default_factory=dict)
    num: int = 0  # sequence number given by the reader (evt.num)
    cpu: int = 0
    #: live threads of the thread group at the event, the leader included while it lives
    #: (0 for procexit, and when unknown: as Falco without thread-group information)
    nthreads: int = 0
    nchilds: int = 0  # ... of which not the leader
    proc: Process | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in HEADER_FIELDS}
        out["args"] = self.args
        return out

    def to_json(self) -> bytes:
        try:
            return orjson.dumps(self.to_dict())
        except TypeError:  # a string holds bytes that are not UTF-8 (see events/text.py)
            return orjson.dumps(printable_tree(self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Build an event from a decoded JSON object; unknown keys are ignored.

        A ``proc`` key (an object with Process fields, ``parent`` nested the same way) is
        accepted so that hand-written or captured events can carry their process context.
        """
        kwargs = {k: data[k] for k in HEADER_FIELDS if k in data}
        ev = cls(args=dict(data.get("args") or {}), **kwargs)
        if isinstance(data.get("proc"), dict):
            ev.proc = process_from_dict(data["proc"])
        return ev

    @classmethod
    def from_json(cls, line: bytes | str) -> Event:
        return cls.from_dict(orjson.loads(line))


#: the facts of a Process, in field order (``parent`` and ``container`` are nested,
#: ``table_bytes`` and ``fds`` bookkeeping, the pipe peers links to other entries)
_LINKS = ("parent", "table_bytes", "container", "fds", "stdin_writer", "stdout_reader")
_PROCESS_FIELDS: tuple[str, ...] = tuple(
    k for k in Process.__dataclass_fields__ if k not in _LINKS)
_PROCESS_KEYS = frozenset(_PROCESS_FIELDS)
_META_KEYS = tuple(ContainerMeta.__dataclass_fields__)


def process_from_dict(data: dict[str, Any]) -> Process:
    proc = Process(**{k: v for k, v in data.items() if k in _PROCESS_KEYS})
    if isinstance(data.get("parent"), dict):
        proc.parent = process_from_dict(data["parent"])
    for link in ("stdin_writer", "stdout_reader"):
        if isinstance(data.get(link), dict):
            setattr(proc, link, process_from_dict(data[link]))
    container = data.get("container")
    if isinstance(container, dict) and isinstance(container.get("id"), str):
        meta = container.get("meta")
        proc.container = ContainerInfo(
            id=container["id"], runtime=str(container.get("runtime") or ""),
            meta=ContainerMeta(**{k: v for k, v in meta.items() if k in _META_KEYS})
            if isinstance(meta, dict) else None)
    return proc


def process_to_dict(proc: Process, depth: int = 8) -> dict[str, Any]:
    out = {k: getattr(proc, k) for k in _PROCESS_FIELDS}
    info = proc.container
    if info is not None:
        meta = info.meta
        out["container"] = {
            "id": info.id, "runtime": info.runtime,
            "meta": None if meta is None else {
                k: dict(v) if isinstance(v, Mapping) else v
                for k in _META_KEYS for v in (getattr(meta, k),)},
        }
    if proc.parent is not None and depth > 0:
        out["parent"] = process_to_dict(proc.parent, depth - 1)
    if depth > 0:
        # the pipe peers as they are, without their own links (two processes can name each
        # other: a writer that exec'd twice around its reader's exec)
        for link in ("stdin_writer", "stdout_reader"):
            peer = getattr(proc, link)
            if peer is not None:
                out[link] = process_to_dict(peer, 0)
    return out
