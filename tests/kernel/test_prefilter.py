"""The kernel prefilter against its Python model, event by event, on real syscalls.

The sensor runs with the approvers of the default rules plus a few test rules, in audit mode:
every event is still written to the ring buffer, and the kernel marks those it would have
dropped (SW_F_PF_REJECT).  A child process opens, creates, truncates and unlinks real files
(absolute, relative to its cwd and to a dirfd, with '.', '..' and '//' in them, under
dot-directories, under a renamed comm); for each of its records the model's decision, from
the record's own inputs, must be the kernel's.  Then with the prefilter on: what it rejects
is counted and never reaches the ring buffer, what a rule can match does.
"""

from __future__ import annotations

import ctypes
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sensor_helpers import in_child

from sysward.agent.sensors import Sensor
from sysward.enforce.prefilter import build_tables, compile_approvers, decide
from sysward.enforce.prefilter.abi import Setting
from sysward.enforce.prefilter.model import facts_from_record
from sysward.events.types import BY_ID, HEADER, HeaderFlag
from sysward.rules import load_rules

LIBC = ctypes.CDLL(None, use_errno=True)
ROOT = Path(__file__).parents[2]
TYPES = ["open", "openat", "creat", "unlink", "unlinkat", "mkdir", "mkdirat", "renameat2"]
_PID = HEADER.offsets()["pid"][0]
_FLAGS = HEADER.offsets()["flags"][0]

TEST_RULES = """
- rule: kf test write below the test dir
  desc: d
  condition: evt.type in (open, openat, creat) and evt.is_open_write = true and
    fd.name startswith {base}/w/ and not proc.name = kf-excepted
  output: o
  priority: WARNING
- rule: kf test named file
  desc: d
  condition: evt.type = openat and fd.filename = kf-named and evt.rawres >= 0 and user.uid = 0
  output: o
  priority: WARNING
- rule: kf test dot dir
  desc: d
  condition: evt.type = openat and fd.name contains /.kf-dot/ and evt.arg.flags contains O_CREAT
  output: o
  priority: WARNING
- rule: kf test unlink
  desc: d
  condition: evt.type = unlinkat and evt.arg.name pmatch ({base}/u)
  output: o
  priority: WARNING
"""


def _rules(tmp: Path):  # type: ignore[no-untyped-def]
    f = tmp / "kf-test.yaml"
    f.write_text(TEST_RULES.format(base=tmp))
    res = load_rules([ROOT / "src" / "sysward" / "rules.d", f])
    res.raise_for_errors()
    return res.ruleset


def _workload(base: Path) -> None:
    """Real syscalls: every case of the prefilter's inputs."""
    for d in ("w", "u", "r", ".kf-dot"):
        (base / d).mkdir(exist_ok=True)
    (base / "r" / "kf-named").write_text("x")

    def opn(path: str, flags: int = os.O_RDONLY, dirfd: int | None = None) -> None:
        try:
            fd = os.open(path, flags, 0o644, dir_fd=dirfd)
            os.close(fd)
        except OSError:
            pass

    opn("/etc/hostname")
    opn("/etc/shadow")  # a default rule may match: passes
    opn(str(base / "r" / "kf-named"))
    opn(str(base / "r" / "nothing"))
    opn(str(base / "w" / "f1"), os.O_WRONLY | os.O_CREAT)
    opn(str(base / "w" / "f1"), os.O_RDONLY)
    opn(str(base / "w" / "." / "f1"), os.O_WRONLY)  # unclean: unknown
    opn(str(base) + "//w/f1", os.O_WRONLY)
    opn(str(base / "r" / ".." / "w" / "f1"), os.O_WRONLY)
    opn(str(base / ".kf-dot" / "f"), os.O_WRONLY | os.O_CREAT)
    opn(str(base / ".kf-dot" / "g"), os.O_RDONLY)
    opn(str(base / "r" / "f2"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.chdir(base)
    opn("w/f3", os.O_WRONLY | os.O_CREAT)  # relative to the cwd
    opn("r/kf-named")
    opn("r/other")
    opn(".kf-dot/h", os.O_WRONLY | os.O_CREAT)
    dfd = os.open(str(base / "w"), os.O_RDONLY | os.O_DIRECTORY)
    opn("f4", os.O_WRONLY | os.O_CREAT, dirfd=dfd)  # relative to a dirfd
    opn("f4", os.O_RDONLY, dirfd=dfd)
    os.close(dfd)
    os.chdir("/")
    opn("etc/hostname")  # relative to the root: the decoder leaves it relative
    os.chdir(base)
    LIBC.creat(str(base / "w" / "c1").encode(), 0o644)
    LIBC.creat(str(base / "r" / "c2").encode(), 0o644)
    (base / "u" / "x").write_text("x")
    (base / "r" / "y").write_text("y")
    os.unlink(str(base / "u" / "x"))
    os.unlink(str(base / "r" / "y"))
    os.mkdir(str(base / "r" / "sub"))
    LIBC.prctl(15, b"kf-excepted", 0, 0, 0)  # PR_SET_NAME
    opn(str(base / "w" / "f5"), os.O_WRONLY | os.O_CREAT)
    LIBC.prctl(15, b"", 0, 0, 0)  # an empty comm: unknown to the kernel
    opn(str(base / "w" / "f6"), os.O_WRONLY | os.O_CREAT)
    opn(str(base / "r" / "f7"), os.O_WRONLY | os.O_CREAT)


def _records_of(sensor: Sensor, pid: int, done: float = 1.0) -> list[bytes]:
    out: list[bytes] = []

    def on_batch(records: list[bytes]) -> None:
        out.extend(r for r in records if struct.unpack_from("<I", r, _PID)[0] == pid)

    reader = sensor.ring_buffer(on_batch)
    try:
        deadline = time.monotonic() + done
        while time.monotonic() < deadline:
            reader.poll(20)
    finally:
        reader.close()
    return out


@pytest.fixture()
def base(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_kernel_decisions_equal_the_model(base: Path) -> None:
    ruleset = _rules(base)
    tables = build_tables(compile_approvers(ruleset.rules, TYPES))
    with Sensor(TYPES, prefilter=tables, prefilter_setting=Setting.AUDIT) as sensor:
        pid = in_child(lambda: _workload(base))
        records = _records_of(sensor, pid)
    assert len(records) >= 30, f"only {len(records)} records of the workload arrived"
    mismatches = []
    rejected = passed = 0
    for rec in records:
        facts = facts_from_record(rec)
        kernel_rejects = bool(struct.unpack_from("<I", rec, _FLAGS)[0] & HeaderFlag.PF_REJECT)
        model_passes = decide(tables, facts)
        if kernel_rejects == model_passes:
            mismatches.append(f"{BY_ID[struct.unpack_from('<H', rec, 36)[0]].name} {facts} "
                              f"kernel {'rejects' if kernel_rejects else 'passes'}")
        rejected += kernel_rejects
        passed += not kernel_rejects
    assert not mismatches, "\n".join(mismatches)
    assert rejected >= 10 and passed >= 10, (rejected, passed)


def test_rejected_events_are_counted_and_dropped(base: Path) -> None:
    ruleset = _rules(base)
    tables = build_tables(compile_approvers(ruleset.rules, TYPES))
    (base / "w").mkdir()
    target = base / "w" / "kept"
    with Sensor(TYPES, prefilter=tables, prefilter_setting=Setting.ON) as sensor:
        before = sensor.counters()["openat"].rejected

        def child() -> None:
            for _ in range(50):
                os.close(os.open("/etc/hostname", os.O_RDONLY))
            os.close(os.open(str(target), os.O_WRONLY | os.O_CREAT, 0o644))

        pid = in_child(child)
        records = _records_of(sensor, pid)
        after = sensor.counters()["openat"]
    names = []
    for rec in records:
        f = facts_from_record(rec)
        if f.type == "openat":
            names.append(f.name)
    assert str(target).encode() in names  # a rule can match it: it reached user space
    assert b"/etc/hostname" not in names  # no rule can: dropped in the kernel
    assert after.rejected - before >= 50
    assert after.seen >= after.filtered + after.rejected + after.submitted
