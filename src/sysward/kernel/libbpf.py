"""ctypes declarations over the system's libbpf (libbpf.so.1, API of libbpf 1.1).

Only what sysward uses is declared.  libbpf 1.x reports errors the "strict" way: functions
returning a pointer return NULL and set errno, functions returning int return -errno.  Both
are turned into :class:`BpfError` by the callers, with the errno spelled out and the last
lines libbpf logged (captured here through ``libbpf_set_print`` instead of going to stderr).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_mod
import os
import platform
import re
import threading
from collections import deque
from functools import cache
from typing import Any

from sysward.errors import KernelError

c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
c_uint32 = ctypes.c_uint32
c_size_t = ctypes.c_size_t

# enum bpf_prog_type (linux/bpf.h)
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18
BPF_PROG_TYPE_TRACING = 26
BPF_PROG_TYPE_LSM = 29

# enum bpf_attach_type
BPF_CGROUP_INET4_CONNECT = 10
BPF_TRACE_RAW_TP = 23
BPF_TRACE_FENTRY = 24
BPF_LSM_MAC = 27
BPF_PERF_EVENT = 41

# enum bpf_map_type
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
BPF_MAP_TYPE_RINGBUF = 27
PERCPU_MAP_TYPES = frozenset(
    {BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH,
     BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE}
)

# helper ids (enum bpf_func_id)
BPF_FUNC_send_signal = 109
BPF_FUNC_get_current_task_btf = 158
BPF_FUNC_loop = 181

# enum libbpf_print_level
LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2

# BTF kinds (linux/btf.h)
BTF_KIND_VAR = 14
BTF_KIND_DATASEC = 15


class BpfError(KernelError):
    """libbpf or the kernel refused an operation on a BPF object, program or map."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


def errno_text(err: int) -> str:
    """``13`` -> ``"Permission denied (EACCES)"``; accepts -errno as libbpf returns it."""
    err = abs(err)
    name = errno_mod.errorcode.get(err, f"errno {err}")
    return f"{os.strerror(err)} ({name})"


class bpf_prog_load_opts(ctypes.Structure):  # noqa: N801 - the C name
    _fields_ = [
        ("sz", c_size_t),
        ("attempts", c_int),
        ("expected_attach_type", c_int),
        ("prog_btf_fd", c_uint32),
        ("prog_flags", c_uint32),
        ("prog_ifindex", c_uint32),
        ("kern_version", c_uint32),
        ("attach_btf_id", c_uint32),
        ("attach_prog_fd", c_uint32),
        ("attach_btf_obj_fd", c_uint32),
        ("fd_array", c_void_p),
        ("func_info", c_void_p),
        ("func_info_cnt", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("line_info", c_void_p),
        ("line_info_cnt", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("log_level", c_uint32),
        ("log_size", c_uint32),
        ("log_buf", c_void_p),
    ]


class btf_type(ctypes.Structure):  # noqa: N801
    _fields_ = [("name_off", c_uint32), ("info", c_uint32), ("size_or_type", c_uint32)]


class btf_var_secinfo(ctypes.Structure):  # noqa: N801
    _fields_ = [("type", c_uint32), ("offset", c_uint32), ("size", c_uint32)]


# (name, restype, argtypes).  Pointers to opaque libbpf structs are plain void pointers.
_SIGNATURES: list[tuple[str, Any, list[Any]]] = [
    ("libbpf_set_print", c_void_p, [c_void_p]),
    ("libbpf_num_possible_cpus", c_int, []),
    ("libbpf_probe_bpf_prog_type", c_int, [c_int, c_void_p]),
    ("libbpf_probe_bpf_map_type", c_int, [c_int, c_void_p]),
    ("libbpf_probe_bpf_helper", c_int, [c_int, c_int, c_void_p]),
    ("libbpf_find_vmlinux_btf_id", c_int, [c_char_p, c_int]),
    # objects
    ("bpf_object__open_file", c_void_p, [c_char_p, c_void_p]),
    ("bpf_object__load", c_int, [c_void_p]),
    ("bpf_object__close", None, [c_void_p]),
    ("bpf_object__btf", c_void_p, [c_void_p]),
    ("bpf_object__next_program", c_void_p, [c_void_p, c_void_p]),
    ("bpf_object__next_map", c_void_p, [c_void_p, c_void_p]),
    # programs
    ("bpf_program__name", c_char_p, [c_void_p]),
    ("bpf_program__section_name", c_char_p, [c_void_p]),
    ("bpf_program__set_autoload", c_int, [c_void_p, ctypes.c_bool]),
    ("bpf_program__autoload", ctypes.c_bool, [c_void_p]),
    ("bpf_program__fd", c_int, [c_void_p]),
    ("bpf_program__attach", c_void_p, [c_void_p]),
    ("bpf_program__attach_cgroup", c_void_p, [c_void_p, c_int]),
    # links
    ("bpf_link__destroy", c_int, [c_void_p]),
    ("bpf_link__fd", c_int, [c_void_p]),
    # maps (object level)
    ("bpf_map__name", c_char_p, [c_void_p]),
    ("bpf_map__fd", c_int, [c_void_p]),
    ("bpf_map__type", c_int, [c_void_p]),
    ("bpf_map__key_size", c_uint32, [c_void_p]),
    ("bpf_map__value_size", c_uint32, [c_void_p]),
    ("bpf_map__max_entries", c_uint32, [c_void_p]),
    ("bpf_map__set_max_entries", c_int, [c_void_p, c_uint32]),
    ("bpf_map__is_internal", ctypes.c_bool, [c_void_p]),
    ("bpf_map__btf_value_type_id", c_uint32, [c_void_p]),
    ("bpf_map__initial_value", c_void_p, [c_void_p, ctypes.POINTER(c_size_t)]),
    # BTF
    ("btf__type_cnt", c_uint32, [c_void_p]),
    ("btf__type_by_id", ctypes.POINTER(btf_type), [c_void_p, c_uint32]),
    ("btf__name_by_offset", c_char_p, [c_void_p, c_uint32]),
    ("btf__find_by_name_kind", c_int, [c_void_p, c_char_p, c_uint32]),
    # low level (fd based)
    ("bpf_map_lookup_elem", c_int, [c_int, c_void_p, c_void_p]),
    ("bpf_map_update_elem", c_int, [c_int, c_void_p, c_void_p, ctypes.c_uint64]),
    ("bpf_map_delete_elem", c_int, [c_int, c_void_p]),
    ("bpf_map_get_next_key", c_int, [c_int, c_void_p, c_void_p]),
    ("bpf_obj_get_info_by_fd", c_int, [c_int, c_void_p, ctypes.POINTER(c_uint32)]),
    ("bpf_prog_get_next_id", c_int, [c_uint32, ctypes.POINTER(c_uint32)]),
    ("bpf_prog_get_fd_by_id", c_int, [c_uint32]),
    ("bpf_prog_load", c_int,
     [c_int, c_char_p, c_char_p, c_void_p, c_size_t, ctypes.POINTER(bpf_prog_load_opts)]),
    ("bpf_link_create", c_int, [c_int, c_int, c_int, c_void_p]),
    ("bpf_raw_tracepoint_open", c_int, [c_char_p, c_int]),
]


class Libbpf:
    """The loaded library with every function of ``_SIGNATURES`` as a typed attribute."""

    def __init__(self, cdll: ctypes.CDLL) -> None:
        self.cdll = cdll
        for name, restype, argtypes in _SIGNATURES:
            fn = getattr(cdll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def __getattr__(self, name: str) -> Any:  # for mypy: attributes are set dynamically
        raise AttributeError(name)


@cache
def lib() -> Libbpf:
    """Load libbpf.so.1 once; a missing library is a user error with the package to install."""
    try:
        cdll = ctypes.CDLL("libbpf.so.1", use_errno=True)
    except OSError as exc:
        raise KernelError(
            f"cannot load libbpf.so.1 ({exc}); install the libbpf1 package "
            "(apt-get install libbpf1)."
        ) from None
    loaded = Libbpf(cdll)
    _install_print_callback(loaded)
    return loaded


def last_errno() -> int:
    return ctypes.get_errno() or errno_mod.EINVAL


# --------------------------------------------------------------------------------------------
# libbpf's log: captured into a bounded buffer, never printed.

_PRINT_FN = ctypes.CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
_LOG_LINES: deque[str] = deque(maxlen=400)
_LOG_LOCK = threading.Lock()
#: a verifier log can be megabytes; keep its head (the program) and its tail (the reason)
_KEEP_HEAD, _KEEP_TAIL = 3, 60

# va_list is an array/struct the callee may consume; vsnprintf consumes it, so a second
# formatting pass (when the first buffer was too small) needs a byte copy of the original,
# which is what va_copy does on these ABIs.
_VA_LIST_SIZE = {"x86_64": 24, "aarch64": 32, "arm64": 32}.get(platform.machine(), 0)

_libc = ctypes.CDLL(None, use_errno=True)
_vsnprintf = _libc.vsnprintf
_vsnprintf.restype = c_int
_vsnprintf.argtypes = [c_void_p, c_size_t, c_char_p, c_void_p]
_first_buf = ctypes.create_string_buffer(8192)


def _format(fmt: bytes, args: int) -> str:
    if _VA_LIST_SIZE:
        saved = ctypes.create_string_buffer(_VA_LIST_SIZE)
        ctypes.memmove(saved, args, _VA_LIST_SIZE)
        work = ctypes.create_string_buffer(_VA_LIST_SIZE)
        ctypes.memmove(work, saved, _VA_LIST_SIZE)
        n = _vsnprintf(_first_buf, len(_first_buf), fmt, ctypes.addressof(work))
        if n < len(_first_buf):
            return _first_buf.value.decode("utf-8", "replace")
        big = ctypes.create_string_buffer(n + 1)
        ctypes.memmove(work, saved, _VA_LIST_SIZE)
        _vsnprintf(big, n + 1, fmt, ctypes.addressof(work))
        return big.value.decode("utf-8", "replace")
    _vsnprintf(_first_buf, len(_first_buf), fmt, args)
    return _first_buf.value.decode("utf-8", "replace")


def _on_print(level: int, fmt: bytes, args: int) -> int:
    if level == LIBBPF_DEBUG:
        return 0
    with contextlib.suppress(Exception):  # never let an exception cross into C
        record(_format(fmt, args))
    return 0


def record(text: str) -> None:
    """Keep one libbpf message: all of a short one, head and tail of a long verifier log."""
    lines = text.splitlines()
    if len(lines) > _KEEP_HEAD + _KEEP_TAIL:
        skipped = len(lines) - _KEEP_HEAD - _KEEP_TAIL
        lines = lines[:_KEEP_HEAD] + [f"... ({skipped} lines)"] + lines[-_KEEP_TAIL:]
    with _LOG_LOCK:
        _LOG_LINES.extend(lines)


_print_cb = _PRINT_FN(_on_print)  # module global: must outlive every libbpf call


def _install_print_callback(loaded: Libbpf) -> None:
    loaded.libbpf_set_print(ctypes.cast(_print_cb, c_void_p))


def log_tail(n: int = 20) -> list[str]:
    """The last ``n`` lines libbpf logged (warnings and info)."""
    with _LOG_LOCK:
        return list(_LOG_LINES)[-n:]


def clear_log() -> None:
    with _LOG_LOCK:
        _LOG_LINES.clear()


_FAILED_PROG = re.compile(r"prog '([^']+)': (?:BPF program load failed|failed to load)")


def failed_program(lines: list[str]) -> str | None:
    """The program libbpf reported as failed to load, from its log lines."""
    for line in reversed(lines):
        m = _FAILED_PROG.search(line)
        if m:
            return m.group(1)
    return None


def verifier_lines(lines: list[str], prog: str, n: int = 6) -> list[str]:
    """The last ``n`` lines of ``prog``'s verifier log among the captured lines."""
    start = None
    for i, line in enumerate(lines):
        if f"prog '{prog}': -- BEGIN PROG LOAD LOG --" in line:
            start = i + 1
    if start is None:
        return []
    out: list[str] = []
    for line in lines[start:]:
        if "-- END PROG LOAD LOG --" in line:
            break
        line = line.strip()
        if line and not line.startswith("processed ") and "reference type(" not in line:
            out.append(line)
    return out[-n:]
