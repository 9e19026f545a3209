"""Attribute and name events from real children: the setxattr/removexattr family, ioctl
FS_IOC_SETFLAGS / FS_IOC_FSSETXATTR (and that no other ioctl leaves the kernel), prctl.

Every call is made with Python (os.setxattr, fcntl.ioctl, ctypes prctl) so the qemu guests of
the kernel matrix run this file too.  A filesystem may refuse an attribute (tmpfs on 6.1 keeps
no user.* attributes, ramfs none at all): the event must then carry the error the caller got,
so each test compares the event's result with the one the child saw.
"""

from __future__ import annotations

import array
import ctypes
import errno
import fcntl
import os
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sensor_helpers import LIBC, Collector, in_child, start

from sysward.agent.sensors import Sensor
from sysward.enforce.prefilter import build_tables, compile_approvers, decide
from sysward.enforce.prefilter.abi import Setting
from sysward.enforce.prefilter.model import facts_from_record
from sysward.events.model import Event
from sysward.events.types import HEADER, HeaderFlag, KConst
from sysward.rules import load_rules

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = int(KConst.FS_IOC_SETFLAGS)
FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = int(KConst.FS_IOC_FSSETXATTR)
FS_IMMUTABLE_FL, FS_NODUMP_FL = 0x10, 0x40
FS_XFLAG_NODUMP = 0x80
FIONREAD = 0x541B
PR_SET_NAME, PR_GET_NAME, PR_SET_PDEATHSIG = 15, 16, 1
TYPES = "xattr,ioctl,prctl"
_PID = HEADER.offsets()["pid"][0]
_FLAGS = HEADER.offsets()["flags"][0]


@pytest.fixture(scope="module")
def col() -> Iterator[Collector]:
    yield from start(TYPES)


def _outcome(fn: Callable[..., object], *args: object, **kw: object) -> int:
    """0, or -errno of the OSError the call raised."""
    try:
        fn(*args, **kw)
    except OSError as exc:
        return -(exc.errno or 0)
    return 0


def _report(path: Path, results: list[int]) -> None:
    path.write_text(" ".join(map(str, results)))


def test_setxattr_family(col: Collector, tmp_path: Path) -> None:
    target = tmp_path / "attr-target"
    target.write_text("x")
    link = tmp_path / "attr-link"
    link.symlink_to(target)
    out = tmp_path / "results"
    name = "trusted.sw-test"  # root only, kept by tmpfs too (user.* is not on 6.1's)

    def child() -> None:
        os.chdir(tmp_path)
        fd = os.open(target, os.O_RDONLY)
        _report(out, [
            _outcome(os.setxattr, "attr-target", name, b"v1", os.XATTR_CREATE),
            _outcome(os.setxattr, str(link), name, b"v2", 0, follow_symlinks=False),
            _outcome(os.setxattr, fd, name, b"v3", os.XATTR_REPLACE),
            _outcome(os.removexattr, fd, name),
            _outcome(os.removexattr, "attr-target", name),  # already gone: ENODATA
            _outcome(os.removexattr, str(link), name, follow_symlinks=False),
        ])

    pid = in_child(child)
    res = [int(x) for x in out.read_text().split()]
    real = str(target.resolve())
    ev = col.of_pid(pid, "setxattr")
    assert ev.args == {"path": real, "name": name, "flags": os.XATTR_CREATE, "size": 2}
    assert ev.res == res[0]
    ev = col.of_pid(pid, "lsetxattr")
    assert ev.args["path"] == str(link.resolve().parent / "attr-link")  # the link itself
    assert ev.args["name"] == name and ev.res == res[1]
    ev = col.of_pid(pid, "fsetxattr")
    assert ev.args["path"] == real  # the descriptor resolved to its path
    assert ev.args["fd"] >= 3 and ev.args["flags"] == os.XATTR_REPLACE and ev.res == res[2]
    ev = col.of_pid(pid, "fremovexattr")
    assert ev.args["path"] == real and ev.args["name"] == name and ev.res == res[3]
    ev = col.of_pid(pid, "removexattr")
    assert ev.args == {"path": real, "name": name} and ev.res == res[4]
    assert ev.res in (-errno.ENODATA, -errno.EOPNOTSUPP)
    ev = col.of_pid(pid, "lremovexattr")
    assert ev.res == res[5]


def test_setflags_ioctl_reports_new_and_old_flags(col: Collector, tmp_path: Path) -> None:
    target = tmp_path / "locked"
    target.write_text("x")
    out = tmp_path / "results"

    def child() -> None:
        fd = os.open(target, os.O_RDONLY)
        buf = array.array("i", [0])
        got = _outcome(fcntl.ioctl, fd, FS_IOC_GETFLAGS, buf, True)
        base = buf[0]
        results = [got, base]
        for flags in (base | FS_IMMUTABLE_FL, base):  # chattr +i, then chattr -i
            results.append(_outcome(fcntl.ioctl, fd, FS_IOC_SETFLAGS,
                                    array.array("i", [flags]), False))
        _report(out, results)

    pid = in_child(child)
    got, base, set_res, clear_res = (int(x) for x in out.read_text().split())
    evs = _all_of(col, pid, "ioctl", 2)
    lock, unlock = evs
    real = str(target.resolve())
    for ev in evs:
        assert ev.args["path"] == real and ev.args["request"] == FS_IOC_SETFLAGS
        assert ev.args["fd"] >= 3
    assert lock.res == set_res and unlock.res == clear_res
    assert lock.args["flags"] == base | FS_IMMUTABLE_FL
    assert unlock.args["flags"] == base
    # the inode's attributes at entry, as far as the VFS keeps them for every filesystem:
    # known for both calls; immutable before the unlock when the lock took
    assert lock.args["oldflags"] is not None and unlock.args["oldflags"] is not None
    assert not lock.args["oldflags"] & FS_IMMUTABLE_FL
    assert bool(unlock.args["oldflags"] & FS_IMMUTABLE_FL) == (set_res == 0), (got, set_res)


def test_fssetxattr_flags_are_reported_as_fs_flags(col: Collector, tmp_path: Path) -> None:
    target = tmp_path / "xflags"
    target.write_text("x")
    out = tmp_path / "results"

    def child() -> None:
        fd = os.open(target, os.O_RDONLY)
        buf = bytearray(28)  # struct fsxattr
        got = _outcome(fcntl.ioctl, fd, FS_IOC_FSGETXATTR, buf, True)
        struct.pack_into("<I", buf, 0, struct.unpack_from("<I", buf, 0)[0] | FS_XFLAG_NODUMP)
        _report(out, [got, _outcome(fcntl.ioctl, fd, FS_IOC_FSSETXATTR, buf, False)])

    pid = in_child(child)
    _got, res = (int(x) for x in out.read_text().split())
    ev = col.of_pid(pid, "ioctl")
    assert ev.args["request"] == FS_IOC_FSSETXATTR and ev.res == res
    assert ev.args["flags"] & FS_NODUMP_FL  # FS_XFLAG_NODUMP mapped to FS_NODUMP_FL
    assert ev.args["path"] == str(target.resolve())


def test_other_ioctls_never_leave_the_kernel(col: Collector, tmp_path: Path) -> None:
    target = tmp_path / "control"
    target.write_text("x")
    calls = 5000
    before = col.sensor.counters()["ioctl"]

    def child() -> None:
        r, _w = os.pipe()
        buf = array.array("i", [0])
        for _ in range(calls):
            fcntl.ioctl(r, FIONREAD, buf, True)
        # the control: one wanted request, drained after the others were made
        fd = os.open(target, os.O_RDONLY)
        _outcome(fcntl.ioctl, fd, FS_IOC_SETFLAGS, array.array("i", [0]), False)

    pid = in_child(child)
    col.of_pid(pid, "ioctl")  # the control arrived: every earlier record was drained
    after = col.sensor.counters()["ioctl"]
    mine = [e for e in col.events if e.pid == pid and e.type == "ioctl"]
    assert [e.args["request"] for e in mine] == [FS_IOC_SETFLAGS]
    assert after.filtered - before.filtered >= calls
    # other processes of the host may chattr meanwhile, but not thousands of times
    assert after.submitted - before.submitted < calls // 10
    assert after.seen >= after.filtered + after.rejected + after.submitted


def test_prctl_set_name(col: Collector) -> None:
    def child() -> None:
        LIBC.prctl(PR_SET_NAME, b"sw-renamed-proc-too-long", 0, 0, 0)
        LIBC.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
        buf = ctypes.create_string_buffer(16)
        LIBC.prctl(PR_GET_NAME, buf, 0, 0, 0)

    pid = in_child(child)
    named = col.find(lambda e: e.pid == pid and e.type == "prctl"
                     and e.args["option"] == PR_SET_NAME)
    assert named.res == 0
    assert named.args["arg2_str"] == "sw-renamed-proc-too-long"  # as the caller wrote it
    assert named.comm == "sw-renamed-proc"  # the kernel keeps 15 bytes: the header's comm
    sig = col.find(lambda e: e.pid == pid and e.type == "prctl"
                   and e.args["option"] == PR_SET_PDEATHSIG)
    assert sig.args["arg2_int"] == 9 and sig.args["arg2_str"] == ""
    got = col.find(lambda e: e.pid == pid and e.type == "prctl"
                   and e.args["option"] == PR_GET_NAME)
    assert got.args["arg2_str"] == "sw-renamed-proc"  # read at exit: what the kernel wrote


def _all_of(col: Collector, pid: int, type_: str, n: int) -> list[Event]:
    """The first ``n`` events of one type from one child, in order."""
    seen: list[Event] = []

    def enough(e: Event) -> bool:
        if e.pid == pid and e.type == type_:
            seen.append(e)
        return len(seen) >= n

    col.find(enough)
    return seen[:n]


PF_RULES = """
- rule: pf ioctl lock
  desc: d
  condition: evt.type = ioctl and evt.arg.request = FS_IOC_SETFLAGS
  output: o
  priority: WARNING
- rule: pf prctl name
  desc: d
  condition: evt.type = prctl and evt.arg.option = PR_SET_NAME
  output: o
  priority: WARNING
- rule: pf xattr below
  desc: d
  condition: evt.type = setxattr and evt.arg.path startswith {base}/kept/
  output: o
  priority: WARNING
"""


def test_prefilter_decides_the_new_types_as_its_model(tmp_path: Path) -> None:
    """The approvers of the new types (ioctl request, prctl option, setxattr path), in audit
    mode: the kernel's decision on every record equals the model's, and both kinds occur."""
    f = tmp_path / "pf.yaml"
    f.write_text(PF_RULES.format(base=tmp_path))
    loaded = load_rules([f])
    loaded.raise_for_errors()
    types = ["ioctl", "prctl", "setxattr"]
    tables = build_tables(compile_approvers(loaded.ruleset.rules, types))
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "a").write_text("x")
    (tmp_path / "other").write_text("x")

    def child() -> None:
        fd = os.open(tmp_path / "other", os.O_RDONLY)
        _outcome(fcntl.ioctl, fd, FS_IOC_SETFLAGS, array.array("i", [0]), False)
        buf = bytearray(28)
        _outcome(fcntl.ioctl, fd, FS_IOC_FSSETXATTR, buf, False)
        LIBC.prctl(PR_SET_NAME, b"sw-pf", 0, 0, 0)
        LIBC.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
        _outcome(os.setxattr, str(tmp_path / "kept" / "a"), "trusted.sw", b"1")
        _outcome(os.setxattr, str(tmp_path / "other"), "trusted.sw", b"1")

    with Sensor(types, prefilter=tables, prefilter_setting=Setting.AUDIT) as sensor:
        records: list[bytes] = []
        reader = sensor.ring_buffer(records.extend)
        try:
            pid = in_child(child)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(
                    [r for r in records if struct.unpack_from("<I", r, _PID)[0] == pid]) < 6:
                reader.poll(20)
        finally:
            reader.close()
    mine = [r for r in records if struct.unpack_from("<I", r, _PID)[0] == pid]
    assert len(mine) == 6, f"{len(mine)} records of the child arrived"
    verdicts = []
    for rec in mine:
        facts = facts_from_record(rec)
        kernel_passes = not struct.unpack_from("<I", rec, _FLAGS)[0] & HeaderFlag.PF_REJECT
        assert kernel_passes == decide(tables, facts), facts
        verdicts.append((facts.type, kernel_passes))
    assert sorted(verdicts) == [("ioctl", False), ("ioctl", True), ("prctl", False),
                                ("prctl", True), ("setxattr", False), ("setxattr", True)]
