"""Agent threads carry their names into the kernel (what top -H and /proc/<pid>/task show)."""

from __future__ import annotations

import threading
from pathlib import Path

from sysward.kernel.threadname import name_os_thread


def _comm(tid: int) -> str:
    return Path(f"/proc/self/task/{tid}/comm").read_text().strip()


def test_a_thread_gets_its_name_cut_to_15_bytes_and_the_main_thread_keeps_its_own() -> None:
    main_before = _comm(threading.get_native_id())
    seen: list[str] = []

    def run() -> None:
        assert name_os_thread("sw-a-very-long-thread-name")
        seen.append(_comm(threading.get_native_id()))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == ["sw-a-very-long-"]
    assert name_os_thread("sw-main") is False
    assert _comm(threading.get_native_id()) == main_before
