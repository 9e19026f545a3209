"""Detection and enforcement walk paths with the same code (bpf/sw_walk.h): across a bind
mount, the executable path an event reports is the path an enforcement rule matches."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from enforce_helpers import copied_binary, enforcer, rules, started, wait_reports
from sensor_helpers import start


@pytest.fixture()
def bind_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(real dir, a bind mount of it elsewhere): one inode, two paths."""
    real, view = tmp_path / "real", tmp_path / "view"
    real.mkdir()
    view.mkdir()
    subprocess.run(["mount", "--bind", str(real), str(view)], check=True)
    try:
        yield real, view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_exec_through_a_bind_mount_same_path_for_alert_and_kill(
        bind_mount: tuple[Path, Path]) -> None:
    real, view = bind_mount
    binary = copied_binary(real, "true", "bindexe-")
    through_view = view / binary.name
    # detection: the sensor names the executable by the path the process used, the walk
    # having crossed from the bind mount's root to its mount point
    with contextmanager(start)("execve") as col:
        proc = subprocess.Popen([str(through_view)])
        assert proc.wait() == 0
        seen = col.of_pid(proc.pid, "execve").args["filename"]
    assert seen == str(through_view)
    # enforcement: a rule on exactly that path kills the exec through the view, and only it
    enf = enforcer(rules(("no bind exe", f"evt.type = execve and proc.exepath = {seen}",
                          "kill")))
    with started(enf):
        assert subprocess.run([str(through_view)]).returncode == -signal.SIGKILL
        assert subprocess.run([str(binary)]).returncode == 0  # same file, its other path
        reps = wait_reports(enf, lambda r: r.comm == binary.name[:15])
        assert [r.action for r in reps] == ["killed"]
