"""The sensor as a unit: nothing of ours stays in the kernel, losses are counted, the agent's
own syscalls are filtered, and types switch on and off without reloading."""

from __future__ import annotations

import json
import os
import subprocess

from sensor_helpers import Collector, in_child

from sysward.agent.sensors import Sensor


def _kernel_prog_ids() -> set[int]:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], check=True, capture_output=True,
                         text=True).stdout
    return {p["id"] for p in json.loads(out)}


def _kernel_link_prog_ids() -> set[int]:
    out = subprocess.run(["bpftool", "link", "show", "-j"], check=True, capture_output=True,
                         text=True).stdout
    return {lk.get("prog_id") for lk in json.loads(out or "[]")}


def test_no_programs_or_links_remain_after_close() -> None:
    sensor = Sensor("exec,open,connect,setuid,exit").start()
    ids = set(sensor.program_ids())
    assert len(ids) >= 10
    assert ids <= _kernel_prog_ids()
    assert ids & _kernel_link_prog_ids()
    sensor.close()
    assert not ids & _kernel_prog_ids()
    assert not ids & _kernel_link_prog_ids()


def _setuid_many() -> None:
    for _ in range(3000):
        os.setuid(0)


def test_lost_counter_rises_when_tiny_ring_buffer_is_flooded() -> None:
    with Sensor("setuid", ringbuf_bytes=os.sysconf("SC_PAGE_SIZE")) as sensor:
        # nobody drains: a page holds a few dozen records, the rest must be counted as lost
        in_child(_setuid_many)
        c = sensor.counters()["setuid"]
    assert c.lost > 2000
    assert 0 < c.submitted < 100
    assert c.seen == c.filtered + c.submitted + c.lost


def test_own_process_is_filtered_and_types_switch_without_reload() -> None:
    with Sensor("setuid") as sensor:
        col = Collector(sensor)
        try:
            before = sensor.counters()["setuid"]
            threads_before = len(os.listdir("/proc/self/task"))
            for _ in range(10):
                os.setuid(0)  # the agent itself: filtered in the kernel
            mid = sensor.counters()["setuid"]
            # glibc's setuid runs the syscall on every thread of the process (setxid
            # broadcast), so each call counts once per thread that pytest has running --
            # and threads of earlier tests (readers, servers) may end meanwhile
            threads_after = len(os.listdir("/proc/self/task"))
            low, high = sorted((threads_before, threads_after))
            assert 10 * low <= mid.filtered - before.filtered <= 10 * high
            assert mid.submitted == before.submitted or all(
                e.pid != os.getpid() for e in col.events)
            sensor.set_enabled(["setuid"], on=False)
            pid = in_child(lambda: os.setuid(0))
            off = sensor.counters()["setuid"]
            assert off.filtered - mid.filtered >= 1
            sensor.set_enabled(["setuid"])
            pid = in_child(lambda: os.setuid(0))
            ev = col.of_pid(pid, "setuid")
            assert ev.res == 0
            assert all(e.pid != os.getpid() for e in col.events)
        finally:
            col.close()
