"""A BPF object file: open, set load-time globals, load, attach its programs, close.

``BpfObject`` owns the ``struct bpf_object*`` and every link its programs created; closing it
(explicitly, on context exit, or when it is garbage collected) destroys the links first, so no
program of ours stays attached in the kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from sysward.errors import SyswardError
from sysward.kernel import libbpf as lb
from sysward.kernel.libbpf import BpfError, errno_text, last_errno, lib
from sysward.kernel.maps import BpfMap

_DATA_SECTIONS = (".rodata", ".data", ".bss")


def _tail(lines: list[str], n: int = 6) -> str:
    lines = [line.strip() for line in lines if line.strip()]
    return " | ".join(lines[-n:])


class Link:
    """An attachment of a program (``struct bpf_link*``); close() detaches, idempotently."""

    __slots__ = ("_ptr", "_owner", "program")

    def __init__(self, ptr: int, program: BpfProgram) -> None:
        self._ptr: int | None = ptr
        self.program = program
        self._owner = program._obj

    @property
    def fd(self) -> int:
        if self._ptr is None:
            raise SyswardError(f"link of program '{self.program.name}' is closed.")
        return int(lib().bpf_link__fd(self._ptr))

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is None:
            return
        lib().bpf_link__destroy(ptr)
        self._owner._forget_link(self)

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BpfProgram:
    """One program of a :class:`BpfObject`."""

    __slots__ = ("_obj", "_ptr", "name", "section")

    def __init__(self, obj: BpfObject, ptr: int) -> None:
        self._obj = obj
        self._ptr = ptr
        self.name: str = lib().bpf_program__name(ptr).decode()
        self.section: str = lib().bpf_program__section_name(ptr).decode()

    def __repr__(self) -> str:
        return f"<BpfProgram {self.name!r} SEC({self.section!r})>"

    def _handle(self) -> int:
        self._obj.check_open()
        return self._ptr

    def set_autoload(self, on: bool) -> None:
        """Choose before load() whether this program is loaded at all."""
        if self._obj.loaded:
            raise SyswardError(
                f"cannot change autoload of program '{self.name}': call it before load()."
            )
        rc = lib().bpf_program__set_autoload(self._handle(), on)
        if rc < 0:
            raise BpfError(
                f"setting autoload of program '{self.name}' failed: {errno_text(rc)}", errno=-rc
            )

    @property
    def autoload(self) -> bool:
        return bool(lib().bpf_program__autoload(self._handle()))

    @property
    def fd(self) -> int:
        fd = int(lib().bpf_program__fd(self._handle()))
        if fd < 0:
            raise SyswardError(f"program '{self.name}' is not loaded.")
        return fd

    @property
    def id(self) -> int:
        """The kernel's id of the loaded program (as ``bpftool prog show`` lists it)."""
        return prog_info_id(self.fd)

    def attach(self) -> Link:
        """Attach by section name (tracepoint/..., raw_tracepoint/..., tp_btf/..., lsm/...)."""
        handle = self._handle()
        if self.section.startswith(("tracepoint/", "tp/")):
            from sysward.kernel.tracefs import ensure_tracefs

            ensure_tracefs()
        lb.clear_log()
        ptr = lib().bpf_program__attach(handle)
        if not ptr:
            err = last_errno()
            raise BpfError(
                f"attaching program '{self.name}' (SEC {self.section}) failed: "
                f"{errno_text(err)}{_detail(lb.log_tail())}",
                errno=err,
            )
        return self._obj._track(Link(ptr, self))

    def attach_cgroup(self, cgroup_path: str) -> Link:
        """Attach a cgroup program (cgroup/connect4, ...) to the cgroup v2 directory given."""
        handle = self._handle()
        try:
            cg_fd = os.open(cgroup_path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise BpfError(
                f"attaching program '{self.name}' to cgroup '{cgroup_path}' failed: "
                f"cannot open it: {errno_text(exc.errno or errno.EINVAL)}",
                errno=exc.errno or errno.EINVAL,
            ) from None
        try:
            lb.clear_log()
            ptr = lib().bpf_program__attach_cgroup(handle, cg_fd)
            if not ptr:
                err = last_errno()
                raise BpfError(
                    f"attaching program '{self.name}' (SEC {self.section}) to cgroup "
                    f"'{cgroup_path}' failed: {errno_text(err)}{_detail(lb.log_tail())}",
                    errno=err,
                )
        finally:
            os.close(cg_fd)  # the link holds its own reference to the cgroup
        return self._obj._track(Link(ptr, self))


def _detail(lines: list[str]) -> str:
    tail = _tail(lines, 4)
    return f" (libbpf: {tail})" if tail else ""


def prog_info_id(fd: int) -> int:
    """The kernel id of the program behind ``fd`` (struct bpf_prog_info: u32 type, u32 id)."""
    info = (ctypes.c_uint32 * 2)()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    rc = lib().bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size))
    if rc < 0:
        raise BpfError(f"reading program info of fd {fd} failed: {errno_text(rc)}", errno=-rc)
    return int(info[1])


def _release_in_child() -> int | None:
    """Fork a grandchild that holds our BPF and perf-event fds until the returned pipe end is
    closed, then exits, so that the kernel's slow release happens in it.  It keeps nothing
    else: sockets, pipes and files are closed before this returns (a listening port or an
    output pipe must not outlive the agent).  Returns the write end, or None when fork fails.
    """
    hold_r, hold_w = os.pipe()  # EOF on hold_r: the parent has dropped its references
    ready_r, ready_w = os.pipe()  # a byte on ready_r: the grandchild kept only BPF fds
    try:
        pid = os.fork()
    except OSError:
        for fd in (hold_r, hold_w, ready_r, ready_w):
            os.close(fd)
        return None
    if pid == 0:  # pragma: no cover - runs in the forked child
        try:
            if os.fork() != 0:
                os._exit(0)  # the grandchild is re-parented to init: no zombie left behind
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)  # it finishes a release, nothing else
            for name in os.listdir("/proc/self/fd"):
                fd = int(name)
                if fd in (hold_r, ready_w):
                    continue
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue
                if not target.startswith("anon_inode:"):
                    os.close(fd)
            os.write(ready_w, b"1")
            os.close(ready_w)
            os.read(hold_r, 1)
        finally:
            os._exit(0)
    os.close(hold_r)
    os.close(ready_w)
    os.waitpid(pid, 0)  # the intermediate child exits at once
    os.read(ready_r, 1)  # returns when the grandchild is ready (or gone)
    os.close(ready_r)
    return hold_w


class BpfObject:
    """An opened (and later loaded) BPF object file.  Use as a context manager."""

    def __init__(self, ptr: int, path: Path) -> None:
        self._ptr: int | None = ptr
        self.path = path
        self._loaded = False
        self._links: list[Link] = []
        self._programs: dict[str, BpfProgram] = {}
        self._maps: dict[str, BpfMap] = {}
        p = lib().bpf_object__next_program(ptr, None)
        while p:
            prog = BpfProgram(self, p)
            self._programs[prog.name] = prog
            p = lib().bpf_object__next_program(ptr, p)
        m = lib().bpf_object__next_map(ptr, None)
        while m:
            bmap = BpfMap(self, m)
            self._maps[bmap.name] = bmap
            m = lib().bpf_object__next_map(ptr, m)

    @classmethod
    def open(cls, path: str | Path) -> BpfObject:
        path = Path(path)
        if not os.path.isfile(path):
            raise BpfError(
                f"opening BPF object '{path}' failed: {errno_text(errno.ENOENT)}; "
                "build it with 'make build'.",
                errno=errno.ENOENT,
            )
        lb.clear_log()
        ptr = lib().bpf_object__open_file(os.fsencode(path), None)
        if not ptr:
            err = last_errno()
            raise BpfError(
                f"opening BPF object '{path}' failed: {errno_text(err)}{_detail(lb.log_tail())}",
                errno=err,
            )
        return cls(ptr, path)

    # -- lifecycle -------------------------------------------------------------------------
    def check_open(self) -> int:
        """The libbpf object pointer; SyswardError when the object is closed."""
        if self._ptr is None:
            raise SyswardError(f"BPF object '{self.path}' is closed.")
        return self._ptr

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        """Create the maps and load every autoload program; verifier failures name the program."""
        ptr = self.check_open()
        lb.clear_log()
        rc = lib().bpf_object__load(ptr)
        if rc < 0:
            err = -rc
            lines = lb.log_tail(400)
            prog = lb.failed_program(lines)
            if prog is not None:
                vlog = lb.verifier_lines(lines, prog)
                detail = f"; verifier: {' | '.join(vlog)}" if vlog else _detail(lines)
                hint = ""
                if err == errno.EPERM:
                    hint = " (run as root, or this kernel refuses this program type)"
                raise BpfError(
                    f"loading program '{prog}' of '{self.path.name}' failed: "
                    f"{errno_text(err)}{hint}{detail}",
                    errno=err,
                )
            raise BpfError(
                f"loading BPF object '{self.path.name}' failed: {errno_text(err)}"
                f"{_detail(lines)}",
                errno=err,
            )
        self._loaded = True

    def close(self, hand_off: bool = False) -> None:
        """Destroy our links, then the object (its programs and maps); safe to call twice.

        Detaching a syscall tracepoint makes the kernel wait for an RCU-tasks-trace grace
        period, serialised under a kernel mutex: on the project's 6.18 VM, 40-76 ms per link,
        2 s for the 56 links of the default rules.  With ``hand_off`` the last references go
        to a short-lived child process that pays that wait while the caller goes on (an agent
        can exit at once; a reload does not stall its reader).  The programs are switched off
        here either way (libbpf disables each perf event before closing it), so nothing runs
        after this returns; the kernel frees them when the child is done.
        """
        ptr = self._ptr
        if ptr is None:
            return
        waiter = _release_in_child() if hand_off and self._links else None
        try:
            links = list(self._links)
            if len(links) > 1:
                # The kernel lets some of the grace-period waits overlap: concurrent detaches
                # took half the time of a loop here (2.1 s against 4.2 s for 56 links).
                # ctypes releases the GIL around the libbpf call, so the threads overlap.
                with ThreadPoolExecutor(max_workers=min(64, len(links))) as pool:
                    list(pool.map(Link.close, links))
            else:
                for link in links:
                    link.close()
            self._ptr = None
            lib().bpf_object__close(ptr)
        finally:
            if waiter is not None:
                os.close(waiter)  # the child sees EOF: its exit now drops the last references

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at shutdown the kernel frees our fds anyway
            self.close()

    def _track(self, link: Link) -> Link:
        self._links.append(link)
        return link

    def _forget_link(self, link: Link) -> None:
        with contextlib.suppress(ValueError):
            self._links.remove(link)

    @property
    def links(self) -> list[Link]:
        return list(self._links)

    # -- contents --------------------------------------------------------------------------
    @property
    def programs(self) -> list[BpfProgram]:
        return list(self._programs.values())

    @property
    def maps(self) -> list[BpfMap]:
        return list(self._maps.values())

    def program(self, name: str) -> BpfProgram:
        try:
            return self._programs[name]
        except KeyError:
            known = ", ".join(sorted(self._programs)) or "none"
            raise SyswardError(
                f"BPF object '{self.path.name}' has no program '{name}' (it has: {known})."
            ) from None

    def map(self, name: str) -> BpfMap:
        try:
            return self._maps[name]
        except KeyError:
            known = ", ".join(sorted(self._maps)) or "none"
            raise SyswardError(
                f"BPF object '{self.path.name}' has no map '{name}' (it has: {known})."
            ) from None

    # -- globals ---------------------------------------------------------------------------
    def set_global(self, name: str, value: int | bytes) -> None:
        """Before load: set a global variable (``const volatile`` or plain) by name."""
        ptr = self.check_open()
        if self._loaded:
            raise SyswardError(
                f"cannot set global '{name}' of '{self.path.name}': the object is already loaded."
            )
        bmap, offset, size = self._locate_global(ptr, name)
        if isinstance(value, int):
            try:
                raw = value.to_bytes(size, sys.byteorder, signed=value < 0)
            except OverflowError:
                raise SyswardError(
                    f"value {value} does not fit global '{name}' ({size} bytes)."
                ) from None
        else:
            if len(value) > size:
                raise SyswardError(
                    f"value for global '{name}' is {len(value)} bytes; it holds {size}."
                )
            raw = bytes(value).ljust(size, b"\0")
        psize = ctypes.c_size_t(0)
        base = lib().bpf_map__initial_value(bmap._ptr, ctypes.byref(psize))
        if not base or offset + size > psize.value:
            raise BpfError(
                f"cannot reach the initial data of '{bmap.name}' for global '{name}'.",
                errno=errno.EINVAL,
            )
        ctypes.memmove(base + offset, raw, size)

    def global_value(self, name: str) -> bytes:
        """The bytes of a global as they will be (or were) loaded."""
        ptr = self.check_open()
        bmap, offset, size = self._locate_global(ptr, name)
        psize = ctypes.c_size_t(0)
        base = lib().bpf_map__initial_value(bmap._ptr, ctypes.byref(psize))
        if not base:
            raise BpfError(f"cannot read the initial data of '{bmap.name}'.", errno=errno.EINVAL)
        return ctypes.string_at(base + offset, size)

    def _locate_global(self, ptr: int, name: str) -> tuple[BpfMap, int, int]:
        """(internal map, offset, size) of a global, found through the BTF datasec."""
        btf = lib().bpf_object__btf(ptr)
        if not btf:
            raise SyswardError(
                f"BPF object '{self.path.name}' has no BTF; compile it with clang -g."
            )
        for bmap in self._maps.values():
            if not lib().bpf_map__is_internal(bmap._ptr):
                continue
            sec_id = lib().bpf_map__btf_value_type_id(bmap._ptr)
            if not sec_id:
                continue
            sec = lib().btf__type_by_id(btf, sec_id)
            if not sec or (sec.contents.info >> 24) & 0x1F != lb.BTF_KIND_DATASEC:
                continue
            vlen = sec.contents.info & 0xFFFF
            infos = ctypes.cast(
                ctypes.addressof(sec.contents) + ctypes.sizeof(lb.btf_type),
                ctypes.POINTER(lb.btf_var_secinfo),
            )
            for i in range(vlen):
                vi = infos[i]
                var = lib().btf__type_by_id(btf, vi.type)
                if not var or (var.contents.info >> 24) & 0x1F != lb.BTF_KIND_VAR:
                    continue
                if lib().btf__name_by_offset(btf, var.contents.name_off) == name.encode():
                    return bmap, int(vi.offset), int(vi.size)
        raise SyswardError(f"BPF object '{self.path.name}' has no global variable '{name}'.")

