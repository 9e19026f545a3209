"""CPU and memory of a process (and its threads) from /proc, sampled between two points.

The agent is measured from the outside, the way an operator's monitoring sees it: CPU % is
(utime + stime) of the whole thread group over wall time, 100 % = one core; RSS is VmRSS.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class ProcSample:
    wall: float  # time.monotonic()
    cpu_s: float  # user + system CPU seconds so far
    rss_bytes: int


def sample(pid: int) -> ProcSample:
    """One reading of ``pid``; raises ProcessLookupError when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    # comm may hold spaces and parentheses: the fields we need follow the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / _TICKS
    rss = 0
    for line in status.splitlines():
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1]) * 1024
            break
    return ProcSample(time.monotonic(), cpu_s, rss)


def cpu_percent(a: ProcSample, b: ProcSample) -> float:
    """CPU use between two samples, 100.0 = one core fully busy."""
    wall = b.wall - a.wall
    return 0.0 if wall <= 0 else 100.0 * (b.cpu_s - a.cpu_s) / wall


class ProcWatch:
    """Keeps the previous sample so each ``tick()`` gives CPU % since the last one."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.first = sample(pid)
        self.last = self.first
        self.peak_rss = self.first.rss_bytes

    def tick(self) -> tuple[float, int]:
        """(CPU % since the previous tick, RSS now)."""
        now = sample(self.pid)
        pct = cpu_percent(self.last, now)
        self.last = now
        self.peak_rss = max(self.peak_rss, now.rss_bytes)
        return pct, now.rss_bytes

    def average_cpu(self) -> float:
        return cpu_percent(self.first, self.last)
