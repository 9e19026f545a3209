"""File events from real children: relative opens, failed opens, memfd_create, chdir."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sensor_helpers import LIBC, Collector, in_child, start


@pytest.fixture(scope="module")
def col() -> Iterator[Collector]:
    yield from start("open,memfd_create,chdir,unlink,rename,mkdir")


def test_relative_open_is_made_absolute(col: Collector, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.txt").write_text("x")

    def child() -> int:
        os.chdir(tmp_path)
        fd = os.open("sub/../sub/data.txt", os.O_RDONLY | os.O_CLOEXEC)
        return fd  # the exit code carries the fd number

    pid = in_child(child)
    ev = col.find(lambda e: e.pid == pid and e.type == "openat" and "data.txt" in e.args["name"])
    assert ev.args["name"] == str(tmp_path.resolve() / "sub" / "data.txt")
    assert ev.args["flags"] == os.O_RDONLY | os.O_CLOEXEC
    assert ev.args["dirfd"] == -100
    assert ev.res >= 3


def test_open_relative_to_dirfd(col: Collector, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")

    def child() -> None:
        dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        os.open("f", os.O_WRONLY | os.O_APPEND, dir_fd=dfd)

    pid = in_child(child)
    ev = col.find(lambda e: e.pid == pid and e.type == "openat" and e.args["name"].endswith("/f"))
    assert ev.args["name"] == str(tmp_path.resolve() / "f")
    assert ev.args["dirfd"] >= 3 and ev.args["flags"] & os.O_APPEND


def test_failed_open_has_negative_result(col: Collector, tmp_path: Path) -> None:
    def child() -> None:
        os.chdir(tmp_path)
        with contextlib.suppress(FileNotFoundError):
            os.open("missing-file", os.O_RDONLY)

    pid = in_child(child)
    ev = col.find(lambda e: e.pid == pid and e.type == "openat" and "missing" in e.args["name"])
    assert ev.res == -errno.ENOENT
    assert ev.args["name"] == str(tmp_path.resolve() / "missing-file")


def test_creat_mode(col: Collector, tmp_path: Path) -> None:
    def child() -> None:
        os.open(tmp_path / "new", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o640)

    pid = in_child(child)
    ev = col.find(lambda e: e.pid == pid and e.type == "openat" and e.args["name"].endswith("new"))
    assert ev.args["mode"] == 0o640 and ev.args["flags"] & os.O_CREAT and ev.res >= 0


def test_memfd_create(col: Collector) -> None:
    pid = in_child(lambda: os.memfd_create("sw-test-memfd", os.MFD_CLOEXEC) and None)
    ev = col.of_pid(pid, "memfd_create")
    assert ev.args == {"name": "sw-test-memfd", "flags": os.MFD_CLOEXEC}
    assert ev.res >= 3


def test_chdir_unlink_rename_mkdir(col: Collector, tmp_path: Path) -> None:
    base = tmp_path.resolve()

    def child() -> None:
        os.chdir(tmp_path)
        os.mkdir("d", 0o700)
        Path("d/a").write_text("x")
        os.rename("d/a", "d/b")
        os.unlink("d/b")
        os.chdir("d")

    pid = in_child(child)
    assert col.of_pid(pid, "mkdir").args["path"] == str(base / "d")
    ev = col.find(lambda e: e.pid == pid and e.type.startswith("rename"))
    assert (ev.args["oldpath"], ev.args["newpath"]) == (str(base / "d/a"), str(base / "d/b"))
    ev = col.find(lambda e: e.pid == pid and e.type.startswith("unlink"))
    assert ev.args["name"] == str(base / "d/b") and ev.res == 0
    ev = col.find(lambda e: e.pid == pid and e.type == "chdir" and e.args["path"].endswith("/d"))
    assert ev.args["path"] == str(base / "d")


def test_renameat2_flags_from_the_fifth_argument(col: Collector, tmp_path: Path) -> None:
    """renameat2's flags are its fifth argument (register r8 at exit)."""
    (tmp_path / "a").write_text("x")
    (tmp_path / "b").write_text("y")
    rename_noreplace = 1

    def child() -> int:
        dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        rc = LIBC.renameat2(dfd, b"a", dfd, b"b", rename_noreplace)
        return 0 if rc == -1 and ctypes.get_errno() == errno.EEXIST else 1  # b exists

    pid = in_child(child)
    ev = col.find(lambda e: e.pid == pid and e.type == "renameat2")
    assert ev.args["flags"] == rename_noreplace and ev.res == -errno.EEXIST
    assert (ev.args["oldpath"], ev.args["newpath"]) == (str(tmp_path.resolve() / "a"),
                                                        str(tmp_path.resolve() / "b"))
