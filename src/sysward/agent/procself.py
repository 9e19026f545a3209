"""The agent process's own figures for /metrics, read from /proc/self: the names and meanings
every Prometheus client library uses (process_resident_memory_bytes, ...), so dashboards and
``sysward bench`` read them as they read any other exporter's."""

from __future__ import annotations

import os
import resource

from sysward.metrics import Sample, metric

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _boot_time() -> float:
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    return 0.0


_BOOT = _boot_time()


def process_samples() -> list[Sample]:
    """RSS, virtual size, CPU seconds, start time, open and maximum file descriptors."""
    try:
        with open("/proc/self/stat", "rb") as f:
            # fields after the command name (which may hold spaces and parentheses)
            fields = f.read().rpartition(b")")[2].split()
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        return []
    # fields[0] is the state (field 3 of proc(5)): utime is field 14, so fields[11]
    utime, stime = int(fields[11]), int(fields[12])
    start, vsize, rss = int(fields[19]), int(fields[20]), int(fields[21])
    max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return [
        metric("process_virtual_memory_bytes").sample(vsize),
        metric("process_resident_memory_bytes").sample(rss * _PAGE),
        metric("process_start_time_seconds").sample(_BOOT + start / _TICKS),
        metric("process_cpu_seconds_total").sample((utime + stime) / _TICKS),
        metric("process_open_fds").sample(open_fds),
        metric("process_max_fds").sample(max_fds),
    ]
