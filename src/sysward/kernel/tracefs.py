"""tracefs: where the kernel lists its tracepoints and where libbpf attaches them.

On a fresh machine tracefs is often not mounted; libbpf then cannot resolve a tracepoint's id
and attaching fails with a confusing ENOENT.  ``ensure_tracefs`` mounts it first.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from sysward.errors import KernelError
from sysward.kernel.libbpf import errno_text

TRACEFS = Path("/sys/kernel/tracing")
# Where older systems expose the same tree; libbpf 1.1 prefers it when it exists.
DEBUGFS_TRACING = Path("/sys/kernel/debug/tracing")


def tracefs_root() -> Path | None:
    """The mounted tracefs directory, or None when tracefs is not mounted anywhere we look."""
    for root in (TRACEFS, DEBUGFS_TRACING):
        if os.path.isdir(root / "events"):  # False, not PermissionError, for non-root
            return root
    # an unprivileged user may not see inside it; the mount table still tells
    return TRACEFS if _mounted_at(TRACEFS, "tracefs") else None


def _mounted_at(path: Path, fstype: str) -> bool:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return False
    return any(
        len(parts) >= 3 and parts[1] == str(path) and parts[2] == fstype
        for parts in (line.split() for line in lines)
    )


def ensure_tracefs() -> Path:
    """Mount tracefs at /sys/kernel/tracing when it is absent; return the tracefs root."""
    root = tracefs_root()
    if root is not None:
        return root
    if not TRACEFS.is_dir():
        raise KernelError(
            f"tracefs is not available: {TRACEFS} does not exist; this kernel was built "
            "without CONFIG_TRACING or sysfs is not mounted."
        )
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_void_p]
    rc = libc.mount(b"nodev", os.fsencode(TRACEFS), b"tracefs", 0, None)
    if rc != 0:
        err = ctypes.get_errno() or errno.EINVAL
        raise KernelError(
            f"tracefs is not mounted and mounting it at {TRACEFS} failed: {errno_text(err)}; "
            f"run as root or mount it yourself: mount -t tracefs nodev {TRACEFS}"
        )
    if not (TRACEFS / "events").is_dir():
        raise KernelError(f"tracefs was mounted at {TRACEFS} but lists no events.")
    return TRACEFS


def syscall_tracepoints(root: Path | None = None) -> list[str]:
    """Names of the syscalls with an ``events/syscalls/sys_enter_<name>`` tracepoint."""
    root = root or tracefs_root()
    if root is None:
        return []
    base = root / "events" / "syscalls"
    try:
        names = os.listdir(base)
    except OSError:
        return []
    return sorted(n[len("sys_enter_"):] for n in names if n.startswith("sys_enter_"))


def tracepoint_id(category: str, name: str, root: Path | None = None) -> int:
    """The perf id of tracepoint ``category/name`` (for perf_event_open)."""
    root = root or ensure_tracefs()
    return int((root / "events" / category / name / "id").read_text())
