"""Shared pieces of the sensor kernel tests: a started sensor and a collector of its events.

Each test module starts one sensor (loading takes a moment) for the types it needs, then runs
real syscalls in real child processes and looks for the decoded event of that child's pid.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable, Iterator

from wait_scale import WAIT_SCALE

from sysward.agent.sensors import Sensor
from sysward.events.decoder import Decoder
from sysward.events.model import Event

LIBC = ctypes.CDLL(None, use_errno=True)
KEEP = 200_000  # events kept in memory (the host is busy: other processes are seen too)


class Collector:
    """Drains the sensor's ring buffer on demand and searches the decoded events."""

    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor
        self.decoder = Decoder()
        self.events: list[Event] = []
        self.reader = sensor.ring_buffer(self._on_batch)

    def _on_batch(self, records: list[bytes]) -> None:
        self.events.extend(self.decoder.decode_batch(records))
        if len(self.events) > KEEP:
            del self.events[: len(self.events) - KEEP]

    def assert_decoded_cleanly(self) -> None:
        """Every record drained so far decoded: a plan bug or an ABI drift shows up here, by
        type and with its reason, and not as an event that never arrives."""
        dec = self.decoder
        assert dec.errors == 0, (
            f"{dec.errors} records failed to decode: "
            + "; ".join(f"{t} x{n} ({dec.last_error[t]})" for t, n in dec.errors_by_type.items()))

    def find(self, pred: Callable[[Event], bool], timeout: float = 3.0) -> Event:
        """The first event matching ``pred``, draining until it shows up or time runs out;
        every record drained on the way must have decoded."""
        deadline = time.monotonic() + timeout * WAIT_SCALE
        seen = 0
        while True:
            self.assert_decoded_cleanly()
            for ev in self.events[seen:]:
                if pred(ev):
                    return ev
            seen = len(self.events)
            if time.monotonic() > deadline:
                raise AssertionError("no matching event was delivered")
            self.reader.poll(10)

    def of_pid(self, pid: int, type_: str, timeout: float = 3.0) -> Event:
        return self.find(lambda e: e.pid == pid and e.type == type_, timeout)

    def close(self) -> None:
        self.reader.close()


def start(types: str, **kw: object) -> Iterator[Collector]:
    """Generator body of a module fixture: a started sensor and its collector."""
    sensor = Sensor(types, **kw)  # type: ignore[arg-type]
    sensor.start()
    col = Collector(sensor)
    try:
        yield col
        col.reader.poll(0)
        col.assert_decoded_cleanly()
    finally:
        col.close()
        sensor.close()


def in_child(fn: Callable[[], int | None]) -> int:
    """Run ``fn`` in a forked child, wait for it; returns the child's pid.

    The child's exit status is what ``fn`` returns (0 for None; 99 if it raised).
    """
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            rc = fn()
            code = 0 if rc is None else rc
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child ended with status {status}"
    return pid


def libc_call(name: str, *args: int) -> int:
    fn = getattr(LIBC, name)
    rc = fn(*args)
    return int(rc) if rc >= 0 else -ctypes.get_errno()
