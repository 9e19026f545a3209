"""The optional in-kernel filters of the config: ignored comms, containers only."""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

import pytest
from sensor_helpers import Collector, in_child

from sysward.agent.sensors import Sensor
from sysward.errors import ConfigError

LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000


def _rename_and_open(comm: bytes, path: str) -> None:
    LIBC.prctl(15, comm, 0, 0, 0)  # PR_SET_NAME
    os.close(os.open(path, os.O_RDONLY))


def test_ignored_comm_is_filtered_in_the_kernel(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    with Sensor("openat", ignore_comms=["sw-ignored"]) as sensor:
        col = Collector(sensor)
        try:
            before = sensor.counters()["openat"].filtered
            ignored = in_child(lambda: _rename_and_open(b"sw-ignored", str(target)))
            kept = in_child(lambda: _rename_and_open(b"sw-kept", str(target)))
            col.find(lambda e: e.pid == kept and e.args.get("name") == str(target))
            assert not [e for e in col.events if e.pid == ignored]
            assert sensor.counters()["openat"].filtered > before
        finally:
            col.close()


def _open_in_new_mount_ns(path: str) -> None:
    if LIBC.unshare(CLONE_NEWNS) != 0:
        os._exit(3)
    os.close(os.open(path, os.O_RDONLY))


def test_containers_only_drops_host_processes(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    with Sensor("openat", containers_only=True) as sensor:
        col = Collector(sensor)
        try:
            host = in_child(lambda: os.close(os.open(str(target), os.O_RDONLY)))
            boxed = in_child(lambda: _open_in_new_mount_ns(str(target)))
            col.find(lambda e: e.pid == boxed and e.args.get("name") == str(target))
            time.sleep(0.05)
            col.reader.poll(10)
            assert not [e for e in col.events if e.pid == host]
        finally:
            col.close()


def test_a_comm_longer_than_the_kernel_keeps_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ignore_comms"):
        Sensor("openat", ignore_comms=["a-very-long-command-name"])
