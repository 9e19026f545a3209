"""What this host lets sysward do, found out by trying it.

A program type is only reported usable after a trivial program of that type was really loaded
AND attached: some kernels (this project's VMs among them) load fentry and LSM programs but
refuse to attach them.  The probe programs are two raw instructions built here, so no
compiler is needed at run time.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from sysward.errors import KernelError, PrivilegeError
from sysward.events.types import EVENT_TYPES
from sysward.kernel import libbpf as lb
from sysward.kernel.libbpf import errno_text, lib
from sysward.kernel.tracefs import ensure_tracefs, syscall_tracepoints, tracefs_root

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
ACTIVE_LSMS = Path("/sys/kernel/security/lsm")

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39

# Syscalls the sensors hook (from the event table); doctor names the ones this kernel has no
# tracepoint for.
WATCHED_SYSCALLS: tuple[str, ...] = tuple(
    t.syscall_name for t in EVENT_TYPES if t.syscall_name is not None)
#: syscall -> the kernel option without which its tracepoint is absent and nothing to watch
_NEEDS_OPTION: dict[str, str] = {
    t.syscall_name: t.kernel_option for t in EVENT_TYPES
    if t.syscall_name is not None and t.kernel_option is not None}

# Helpers sysward's programs call that came after the ring buffer (5.8).  Without them the
# objects do not load at all, so the newest of them sets the minimum kernel.
REQUIRED_HELPERS: tuple[tuple[str, int, str], ...] = (
    ("bpf_get_current_task_btf", lb.BPF_FUNC_get_current_task_btf, "5.11"),
    ("bpf_loop", lb.BPF_FUNC_loop, "5.17"),
)
MINIMUM_KERNEL = "5.17"


@dataclass(slots=True)
class Capability:
    """One line of ``sysward doctor``."""

    name: str
    ok: bool
    detail: str  # what was found, and what it means for the user
    required: bool = False  # sysward cannot run without it

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# privileges


def effective_caps() -> int:
    """The effective capability mask of this process (CapEff in /proc/self/status)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def _has_bpf_caps() -> bool:
    caps = effective_caps()
    if caps & (1 << CAP_SYS_ADMIN):
        return True
    return bool(caps & (1 << CAP_BPF)) and bool(caps & (1 << CAP_PERFMON))


def require_privileges() -> None:
    """Raise one clear sentence when this process cannot load sysward's programs."""
    if not _has_bpf_caps():
        # Checked on the effective set, not the uid: root in a container or under a
        # restricted bounding set can lack the capabilities all the same.
        who = "root without" if os.geteuid() == 0 else "a user without"
        raise PrivilegeError(
            f"sysward runs as {who} CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN), which loading "
            "BPF programs needs; run it as root with those capabilities (sudo, or see "
            "docs/deployment.md for containers)."
        )
    if not os.path.exists(VMLINUX_BTF):
        raise KernelError(
            f"this kernel has no BTF ({VMLINUX_BTF} is missing); sysward's CO-RE programs "
            "need a kernel built with CONFIG_DEBUG_INFO_BTF=y."
        )
    lib()  # a missing libbpf.so.1 is reported here, with the package to install
    missing = missing_helpers()
    if missing:
        raise KernelError(
            f"this kernel (Linux {platform.release()}) lacks {_helper_list(missing)}, which "
            f"sysward's programs call; sysward needs Linux {MINIMUM_KERNEL} or newer (see "
            "docs/deployment.md, 'Kernels')."
        )


def missing_helpers() -> list[tuple[str, str]]:
    """(name, first Linux version) of each required helper this kernel's verifier refuses."""
    out = []
    for name, func_id, since in REQUIRED_HELPERS:
        if lib().libbpf_probe_bpf_helper(lb.BPF_PROG_TYPE_TRACEPOINT, func_id, None) != 1:
            out.append((name, since))
    return out


def _helper_list(helpers: list[tuple[str, str]]) -> str:
    return ", ".join(f"{name} (Linux {since})" for name, since in helpers)


# --------------------------------------------------------------------------------------------
# trivial programs


def _insns(ret: int) -> bytes:
    """``r0 = ret; exit`` as two struct bpf_insn."""
    mov_r0_imm = struct.pack("<BBhi", 0xB7, 0, 0, ret)  # BPF_ALU64 | BPF_MOV | BPF_K
    exit_ = struct.pack("<BBhi", 0x95, 0, 0, 0)  # BPF_JMP | BPF_EXIT
    return mov_r0_imm + exit_


def load_trivial(prog_type: int, attach_type: int = 0, btf_id: int = 0, ret: int = 0) -> int:
    """Load ``return ret;`` as ``prog_type``; the fd, or -errno."""
    code = _insns(ret)
    buf = ctypes.create_string_buffer(code, len(code))
    opts = lb.bpf_prog_load_opts()
    opts.sz = ctypes.sizeof(opts)
    opts.expected_attach_type = attach_type
    opts.attach_btf_id = btf_id
    fd = lib().bpf_prog_load(prog_type, b"sysward_probe", b"GPL", buf, len(code) // 8,
                             ctypes.byref(opts))
    return int(fd)


@contextmanager
def _fds() -> Iterator[list[int]]:
    fds: list[int] = []
    try:
        yield fds
    finally:
        for fd in reversed(fds):
            os.close(fd)


_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}.get(platform.machine(), 0)


def _perf_tracepoint_fd(category: str, name: str) -> int:
    """perf_event_open on a tracepoint (what libbpf does to attach a tracepoint program)."""
    from sysward.kernel.tracefs import tracepoint_id

    if not _PERF_EVENT_OPEN:
        return -errno.ENOSYS
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQQ", attr, 0, 2, 128, tracepoint_id(category, name), 1)  # TRACEPOINT
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(_PERF_EVENT_OPEN), attr, ctypes.c_int(-1), ctypes.c_int(0),
                      ctypes.c_int(-1), ctypes.c_ulong(8))  # pid -1, cpu 0, FD_CLOEXEC
    if fd < 0:
        return -(ctypes.get_errno() or errno.EINVAL)
    return int(fd)


# attach(prog_fd, fds_to_close) -> a link fd to close, None when nothing is left open, or -errno
Attach = Callable[[int, list[int]], int | None]


def _probe_type(prog_type: int, attach_type: int, btf_name: str | None, attach: Attach,
                ret: int = 0) -> tuple[bool, str]:
    btf_id = 0
    if btf_name is not None:
        btf_id = lib().libbpf_find_vmlinux_btf_id(btf_name.encode(), attach_type)
        if btf_id < 0:
            return False, f"kernel BTF has no '{btf_name}' ({errno_text(btf_id)})"
    with _fds() as fds:
        fd = load_trivial(prog_type, attach_type, btf_id, ret)
        if fd < 0:
            return False, f"load refused: {errno_text(fd)}"
        fds.append(fd)
        rc = attach(fd, fds)
        if rc is not None and rc < 0:
            return False, f"loads, but attaching is refused: {errno_text(rc)}"
        if rc is not None:
            fds.append(rc)
    return True, "loads and attaches"


def active_lsms() -> list[str] | None:
    """The kernel's active LSM list (securityfs), or None when it cannot be read."""
    try:
        return [m for m in ACTIVE_LSMS.read_text().strip().split(",") if m]
    except OSError:
        return None


def probe_lsm() -> tuple[bool, str]:
    """Whether BPF LSM programs load, attach AND run here.

    A kernel built with CONFIG_BPF_LSM but without ``bpf`` in its active LSM list (Debian 11's
    5.10, for one) loads and attaches them all the same, and then never calls them: a deny
    rule would silently allow everything.  So attaching is not enough; the list must name bpf.
    """
    ok, detail = _probe_type(lb.BPF_PROG_TYPE_LSM, lb.BPF_LSM_MAC, "file_open",
                             _attach_raw_tp(None))
    if not ok:
        return ok, detail
    lsms = active_lsms()
    if lsms is None:
        return True, f"{detail} ({ACTIVE_LSMS} unreadable: cannot tell whether they run)"
    if "bpf" not in lsms:
        return False, (f"loads and attaches, but bpf is not in the active LSM list "
                       f"({','.join(lsms)}), so the kernel never runs them; boot with "
                       f"lsm={','.join([*lsms, 'bpf'])} to enable it")
    return True, f"{detail}; bpf is in the active LSM list"


_PERF_EVENT_IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)


def _attach_tracepoint(fd: int, fds: list[int]) -> int | None:
    pfd = _perf_tracepoint_fd("syscalls", "sys_enter_getppid")
    if pfd < 0:
        return pfd
    fds.append(pfd)
    link = int(lib().bpf_link_create(fd, pfd, lb.BPF_PERF_EVENT, None))
    if link != -errno.EINVAL:
        return link
    # Before 5.15 there are no perf links: attach the old way, as libbpf falls back to.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ioctl(pfd, _PERF_EVENT_IOC_SET_BPF, fd) != 0:
        return -(ctypes.get_errno() or errno.EINVAL)
    return None  # detached when the perf fd closes


def _attach_raw_tp(name: bytes | None) -> Attach:
    def attach(fd: int, fds: list[int]) -> int:
        return int(lib().bpf_raw_tracepoint_open(name, fd))

    return attach


def _attach_cgroup(cgroup_root: Path | None) -> Attach:
    def attach(fd: int, fds: list[int]) -> int | None:
        if cgroup_root is None:
            return -errno.ENOENT
        # a private child cgroup, so the probe never touches a connect() of anyone else
        child = cgroup_root / f"sysward-probe-{os.getpid()}"
        try:
            child.mkdir(exist_ok=True)
        except OSError as exc:
            return -(exc.errno or errno.EINVAL)
        try:
            cg = os.open(child, os.O_RDONLY | os.O_DIRECTORY)
            try:
                link = int(lib().bpf_link_create(fd, cg, lb.BPF_CGROUP_INET4_CONNECT, None))
            finally:
                os.close(cg)
            if link < 0:
                return link
            os.close(link)  # detach before the cgroup goes away
            return None
        finally:
            with suppress(OSError):
                child.rmdir()

    return attach


def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (unified or hybrid layout)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1].replace("\\040", " "))
    return None


# --------------------------------------------------------------------------------------------
# the report


def probe_all() -> list[Capability]:
    """Every capability line of ``sysward doctor``, in display order."""
    caps: list[Capability] = []
    euid = os.geteuid()
    privileged = euid == 0 or _has_bpf_caps()
    if euid == 0:
        caps.append(Capability("root", True, "running as root", required=True))
    else:
        caps.append(Capability(
            "root", privileged,
            "not root, but CAP_BPF and CAP_PERFMON are effective" if privileged
            else f"running as uid {euid} without CAP_BPF: run sysward with sudo",
            required=True,
        ))
    caps.append(Capability("kernel", True, f"Linux {platform.release()} ({platform.machine()})"))
    btf = os.path.exists(VMLINUX_BTF)
    caps.append(Capability(
        "btf", btf,
        f"{VMLINUX_BTF} present: CO-RE programs can load" if btf
        else f"{VMLINUX_BTF} missing: sysward's programs cannot be relocated for this kernel",
        required=True,
    ))
    caps.append(_tracefs_capability(privileged))
    try:
        lib()
    except KernelError as exc:
        caps.append(Capability("libbpf", False, exc.message, required=True))
        return caps
    if not privileged:
        caps.append(Capability(
            "bpf", False, "program types not probed: loading BPF needs root", required=True))
        return caps
    caps.extend(_program_capabilities())
    missing = missing_helpers()
    names = ", ".join(name for name, _, _ in REQUIRED_HELPERS)
    caps.append(Capability(
        "helpers", not missing,
        f"{names} available: the sensors and enforcement programs can load" if not missing
        else f"missing {_helper_list(missing)}: sysward's programs cannot load on this kernel; "
             f"it needs Linux {MINIMUM_KERNEL} or newer",
        required=True,
    ))
    rb = lib().libbpf_probe_bpf_map_type(lb.BPF_MAP_TYPE_RINGBUF, None)
    caps.append(Capability(
        "ringbuf", rb == 1,
        "BPF ring buffer maps work: events reach user space" if rb == 1
        else f"no BPF ring buffer (needs Linux 5.8+): {_probe_result(rb)}",
        required=True,
    ))
    sig = lib().libbpf_probe_bpf_helper(lb.BPF_PROG_TYPE_TRACEPOINT, lb.BPF_FUNC_send_signal, None)
    caps.append(Capability(
        "bpf_send_signal", sig == 1,
        "kill enforcement works in the kernel" if sig == 1
        else f"helper unavailable ({_probe_result(sig)}): kill actions fall back to user space",
    ))
    cg = cgroup2_mount()
    caps.append(Capability(
        "cgroup_v2", cg is not None,
        f"mounted at {cg}" if cg else "no cgroup2 mount: connection blocking is unavailable",
    ))
    caps.append(_syscall_capability())
    return caps


def _probe_result(rc: int) -> str:
    return "not supported" if rc == 0 else errno_text(rc)


def _tracefs_capability(privileged: bool) -> Capability:
    root = tracefs_root()
    if root is not None:
        return Capability("tracefs", True, f"mounted at {root}", required=True)
    if not privileged:
        return Capability("tracefs", False, "not mounted; sysward mounts it when run as root",
                          required=True)
    try:
        root = ensure_tracefs()
    except KernelError as exc:
        return Capability("tracefs", False, exc.message, required=True)
    return Capability("tracefs", True, f"was not mounted; mounted it at {root}", required=True)


def _program_capabilities() -> list[Capability]:
    cg = cgroup2_mount()
    probes: list[tuple[str, bool, str, Callable[[], tuple[bool, str]]]] = [
        ("tracepoint", True, "syscall sensors",
         lambda: _probe_type(lb.BPF_PROG_TYPE_TRACEPOINT, 0, None, _attach_tracepoint)),
        ("raw_tracepoint", False, "raw tracepoint sensors",
         lambda: _probe_type(lb.BPF_PROG_TYPE_RAW_TRACEPOINT, 0, None,
                             _attach_raw_tp(b"sched_process_exec"))),
        ("tp_btf", False, "BTF-typed tracepoints",
         lambda: _probe_type(lb.BPF_PROG_TYPE_TRACING, lb.BPF_TRACE_RAW_TP,
                             "sched_process_exec", _attach_raw_tp(None))),
        ("lsm", False, "LSM hooks (blocking in the kernel)", probe_lsm),
        ("fentry", False, "fentry/fexit probes",
         lambda: _probe_type(lb.BPF_PROG_TYPE_TRACING, lb.BPF_TRACE_FENTRY,
                             "security_file_open", _attach_raw_tp(None))),
        ("cgroup_sock_addr", False, "connection blocking (cgroup/connect4)",
         lambda: _probe_type(lb.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, lb.BPF_CGROUP_INET4_CONNECT,
                             None, _attach_cgroup(cg), ret=1)),
    ]
    out = []
    for name, required, use, probe in probes:
        try:
            ok, detail = probe()
        except (OSError, KernelError) as exc:
            ok, detail = False, str(exc)
        meaning = f"{use} available" if ok else f"{use} unavailable"
        if not ok and name == "lsm":
            meaning += ("; deny rules on exec, open and ptrace are refused at load (or kill "
                        "instead with enforce.deny_fallback_kill)")
        out.append(Capability(f"prog:{name}", ok, f"{detail}: {meaning}", required=required))
    return out


def _syscall_capability() -> Capability:
    names = set(syscall_tracepoints())
    if not names:
        return Capability("syscall_tracepoints", False,
                          "no events/syscalls in tracefs (CONFIG_FTRACE_SYSCALLS off?): "
                          "syscall sensors cannot attach", required=True)
    missing = [s for s in WATCHED_SYSCALLS if s not in names]
    detail = f"{len(names)} sys_enter_* tracepoints"
    notes = []
    mod_missing = [s for s in missing if _NEEDS_OPTION.get(s) == "CONFIG_MODULES"]
    other = [s for s in missing if s not in mod_missing]
    if mod_missing:
        why = ("kernel built without CONFIG_MODULES: no modules can be loaded, so there is "
               "nothing to watch" if not os.path.exists("/proc/modules")
               else "module loading is not reported on this kernel")
        notes.append(f"no {'/'.join(mod_missing)} ({why})")
    if other:
        notes.append(f"missing: {', '.join(other)} (these events are not reported)")
    if notes:
        detail += "; " + "; ".join(notes)
    return Capability("syscall_tracepoints", True, detail, required=True)
