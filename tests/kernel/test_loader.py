"""The libbpf loader against the real kernel: a test-only BPF program on getppid.

tests/kernel/bpf/loader_test.bpf.c is compiled into tmp_path; each test triggers its
tracepoint from this very process with os.getppid() and reads what the kernel produced.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import random
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sysward.errors import SyswardError
from sysward.kernel import (
    BpfError,
    BpfObject,
    RingBufferReader,
    ensure_tracefs,
    possible_cpus,
    require_privileges,
)
from sysward.kernel.libbpf import lib
from sysward.kernel.probe import cgroup2_mount

SRC = Path(__file__).parent / "bpf" / "loader_test.bpf.c"
RECORD = struct.Struct("=IIQQQ32s")  # struct record in loader_test.bpf.c
CNT_HITS, CNT_SUBMITTED, CNT_LOST, CNT_DISCARDED = range(4)
ARCH = {"x86_64": "x86", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def compile_bpf(out: Path, *defines: str) -> Path:
    multiarch = f"/usr/include/{platform.machine()}-linux-gnu"
    cmd = ["clang", "-g", "-O2", "-Wall", "-target", "bpf", f"-D__TARGET_ARCH_{ARCH}",
           f"-I{multiarch}", *(f"-D{d}" for d in defines), "-c", str(SRC), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bpf")
    return {
        "good": compile_bpf(d / "loader_test.bpf.o"),
        "bad": compile_bpf(d / "loader_bad.bpf.o", "LOADER_TEST_BROKEN"),
    }


def kernel_prog_ids() -> set[int]:
    """Every BPF program id loaded in the kernel, from bpftool when present."""
    if shutil.which("bpftool"):
        out = subprocess.run(["bpftool", "prog", "show", "-j"], check=True,
                             capture_output=True, text=True).stdout
        return {p["id"] for p in json.loads(out or "[]")}
    import ctypes

    ids, cur, nxt = set(), 0, ctypes.c_uint32()
    while lib().bpf_prog_get_next_id(cur, ctypes.byref(nxt)) == 0:
        ids.add(nxt.value)
        cur = nxt.value
    return ids


def cgroup_prog_ids(cg: Path) -> set[int]:
    out = subprocess.run(["bpftool", "cgroup", "show", str(cg), "-j"], check=True,
                         capture_output=True, text=True).stdout.strip()
    return {p["id"] for p in json.loads(out or "[]")}


def counter(obj: BpfObject, idx: int) -> int:
    values = obj.map("counters").lookup_percpu(struct.pack("=I", idx))
    return sum(struct.unpack("=Q", v)[0] for v in values)


@pytest.fixture
def loaded(objects: dict[str, Path]) -> Iterator[BpfObject]:
    obj = BpfObject.open(objects["good"])
    obj.set_global("target_tgid", os.getpid())
    obj.set_global("no_wakeup", 1)
    obj.program("allow_connect4").set_autoload(False)
    yield obj
    obj.close()


def test_privileges_are_there() -> None:
    require_privileges()  # must not raise on the test machine
    assert ensure_tracefs().joinpath("events").is_dir()
    assert possible_cpus() >= os.cpu_count() >= 1  # type: ignore[operator]


def test_globals_attach_ringbuf_and_counters(loaded: BpfObject) -> None:
    magic = random.getrandbits(63)
    cookie = random.getrandbits(32)
    loaded.set_global("magic", magic)  # const volatile (.rodata)
    loaded.set_global("data_cookie", cookie)  # plain global (.data)
    loaded.load()
    assert loaded.program("allow_connect4").autoload is False
    with pytest.raises(SyswardError, match="not loaded"):
        _ = loaded.program("allow_connect4").fd
    loaded.program("on_getppid").attach()
    got: list[bytes] = []
    with RingBufferReader(loaded.map("events"), got.extend) as reader:
        for _ in range(3):
            os.getppid()
        assert reader.poll(1000) == 3
        assert reader.poll(0) == 0
    recs = [RECORD.unpack(g[: RECORD.size]) for g in got]
    assert [r[0] for r in recs] == [os.getpid()] * 3
    assert {r[2] for r in recs} == {magic}
    assert {r[4] for r in recs} == {cookie}
    assert [r[3] for r in recs] == [10000, 20000, 30000]  # hit number * 10000 + burst index
    assert {r[5] for r in recs} == {b"\xab" * 32}
    assert counter(loaded, CNT_HITS) == 3
    assert counter(loaded, CNT_SUBMITTED) == 3
    assert counter(loaded, CNT_LOST) == 0


def test_filter_global_really_reaches_the_kernel(loaded: BpfObject) -> None:
    loaded.set_global("target_tgid", os.getpid() + 1_000_000)  # a process that cannot exist
    loaded.load()
    loaded.program("on_getppid").attach()
    os.getppid()
    assert counter(loaded, CNT_HITS) == 0
    with RingBufferReader(loaded.map("events"), lambda b: None) as reader:
        assert reader.drain() == 0


def test_map_lookup_update_delete_keys(loaded: BpfObject) -> None:
    loaded.load()
    scratch = loaded.map("scratch")
    assert (scratch.key_size, scratch.value_size, scratch.max_entries) == (4, 8, 16)
    assert scratch.lookup(b"\1\0\0\0") is None
    for k in range(5):
        scratch.update(struct.pack("=I", k), struct.pack("=Q", k * 11))
    assert sorted(struct.unpack("=I", k)[0] for k in scratch.keys()) == list(range(5))  # noqa: SIM118
    assert scratch.lookup(struct.pack("=I", 3)) == struct.pack("=Q", 33)
    with pytest.raises(BpfError) as ei:
        scratch.update(struct.pack("=I", 3), b"\0" * 8, flags=1)  # BPF_NOEXIST
    assert ei.value.errno == errno.EEXIST and "scratch" in str(ei.value)
    assert scratch.delete(struct.pack("=I", 3)) is True
    assert scratch.delete(struct.pack("=I", 3)) is False
    assert len(list(scratch.keys())) == 4
    with pytest.raises(ValueError):
        scratch.lookup(b"\0")
    counters = loaded.map("counters")
    assert len(counters.lookup_percpu(b"\0\0\0\0")) == possible_cpus()
    with pytest.raises(ValueError, match="per-CPU"):
        counters.lookup(b"\0\0\0\0")


def test_detach_and_close_leave_nothing_in_the_kernel(objects: dict[str, Path]) -> None:
    obj = BpfObject.open(objects["good"])
    obj.set_global("target_tgid", os.getpid())
    obj.load()
    ids = {p.id for p in obj.programs}
    assert len(ids) == 2 and ids <= kernel_prog_ids()
    link = obj.program("on_getppid").attach()
    os.getppid()
    assert counter(obj, CNT_HITS) == 1
    link.close()
    link.close()  # idempotent
    os.getppid()
    assert counter(obj, CNT_HITS) == 1  # detached: the tracepoint no longer runs our program
    obj.program("on_getppid").attach()  # left attached: close() must destroy it
    assert len(obj.links) == 1
    obj.close()
    obj.close()
    assert not ids & kernel_prog_ids()
    with pytest.raises(SyswardError, match="closed"):
        obj.map("events").lookup(b"")


def test_close_with_hand_off_returns_at_once_and_the_kernel_frees_later(
    objects: dict[str, Path],
) -> None:
    obj = BpfObject.open(objects["good"])
    obj.set_global("target_tgid", os.getpid())
    obj.load()
    ids = {p.id for p in obj.programs}
    obj.program("on_getppid").attach()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    obj.close(hand_off=True)
    # the child that waits for the kernel kept none of our other files: the port is free
    listener.close()
    again = socket.socket()
    again.bind(("127.0.0.1", port))
    again.close()
    deadline = time.monotonic() + 10
    while ids & kernel_prog_ids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ids & kernel_prog_ids()


def test_attach_cgroup(objects: dict[str, Path], tmp_path: Path) -> None:
    root = cgroup2_mount()
    if root is None:
        pytest.skip("no cgroup v2 mount")
    cg = root / f"sysward-test-{os.getpid()}"
    cg.mkdir()
    try:
        with BpfObject.open(objects["good"]) as obj:
            obj.load()
            prog = obj.program("allow_connect4")
            link = prog.attach_cgroup(str(cg))
            assert prog.id in cgroup_prog_ids(cg)
            link.close()
            assert prog.id not in cgroup_prog_ids(cg)
            with pytest.raises(BpfError, match="allow_connect4.*cannot open"):
                prog.attach_cgroup(str(tmp_path / "no-such-cgroup"))
    finally:
        cg.rmdir()


def test_flood_counts_failed_reserves(loaded: BpfObject) -> None:
    events = loaded.map("events")
    events.set_max_entries(4096)  # one page: room for 56 records of 72 bytes
    loaded.set_global("burst", 200)
    loaded.load()
    assert events.max_entries == 4096
    loaded.program("on_getppid").attach()
    os.getppid()  # 200 records into a buffer nobody reads
    submitted = counter(loaded, CNT_SUBMITTED)
    lost = counter(loaded, CNT_LOST)
    assert submitted + lost == 200
    assert lost > 0 and 0 < submitted <= 4096 // 72
    with RingBufferReader(events, lambda b: None) as reader:
        assert reader.drain() == submitted  # everything the kernel accepted arrives


def test_wraparound_discards_and_batches(loaded: BpfObject) -> None:
    loaded.map("events").set_max_entries(4096)
    loaded.set_global("burst", 20)
    loaded.set_global("discard_every", 5)  # 4 of 20 records are discarded by the kernel
    magic = random.getrandbits(63)
    loaded.set_global("magic", magic)
    loaded.load()
    loaded.program("on_getppid").attach()
    batches: list[int] = []
    seqs: list[int] = []

    def on_batch(batch: list[bytes]) -> None:
        batches.append(len(batch))
        for raw in batch:
            tgid, _cpu, m, seq, _cookie, fill = RECORD.unpack(raw[: RECORD.size])
            assert (tgid, m, fill) == (os.getpid(), magic, b"\xab" * 32)
            seqs.append(seq)

    with RingBufferReader(loaded.map("events"), on_batch, max_batch=7) as reader:
        for _ in range(40):  # 40 * 20 * 72 bytes: the 4 KiB ring wraps about 14 times
            os.getppid()
            reader.drain()
        assert reader.discarded == 40 * 4
        assert reader.records == 40 * 16
    expected = [h * 10000 + i for h in range(1, 41) for i in range(20) if i % 5]
    assert seqs == expected
    assert max(batches) == 7
    assert counter(loaded, CNT_LOST) == 0


def test_poll_is_a_timed_drain(loaded: BpfObject) -> None:
    loaded.load()
    loaded.program("on_getppid").attach()
    with RingBufferReader(loaded.map("events"), lambda b: None) as reader:
        assert reader.fileno() == loaded.map("events").fd
        t0 = time.monotonic()
        assert reader.poll(60) == 0
        assert time.monotonic() - t0 >= 0.05
        os.getppid()  # submitted with BPF_RB_NO_WAKEUP: no wakeup, but data is pending
        t0 = time.monotonic()
        assert reader.poll(2000) == 1
        assert time.monotonic() - t0 < 1.0


# ---------------------------------------------------------------------------------- errors


def test_open_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BpfError) as ei:
        BpfObject.open(tmp_path / "nope.bpf.o")
    assert ei.value.errno == errno.ENOENT
    assert "nope.bpf.o" in str(ei.value) and "ENOENT" in str(ei.value)


def test_unknown_names_and_misuse(loaded: BpfObject) -> None:
    with pytest.raises(SyswardError, match="no map 'nope'.*events"):
        loaded.map("nope")
    with pytest.raises(SyswardError, match="no program 'nope'.*on_getppid"):
        loaded.program("nope")
    with pytest.raises(SyswardError, match="no global variable 'nope'"):
        loaded.set_global("nope", 1)
    with pytest.raises(SyswardError, match="does not fit"):
        loaded.set_global("target_tgid", 1 << 40)
    with pytest.raises(SyswardError, match="power of two"):
        loaded.map("events").set_max_entries(5000)
    with pytest.raises(SyswardError, match="load the object first"):
        _ = loaded.map("events").fd
    loaded.load()
    with pytest.raises(SyswardError, match="already loaded"):
        loaded.set_global("magic", 1)
    with pytest.raises(SyswardError, match="before load"):
        loaded.program("on_getppid").set_autoload(False)
    with pytest.raises(SyswardError, match="already loaded"):
        loaded.map("events").set_max_entries(8192)


def test_verifier_rejection_names_program_and_log(objects: dict[str, Path]) -> None:
    before = kernel_prog_ids()
    with BpfObject.open(objects["bad"]) as obj, pytest.raises(BpfError) as ei:
        obj.load()
    msg = str(ei.value)
    assert "loading program 'bad_deref'" in msg
    assert ei.value.errno == errno.EACCES and "EACCES" in msg
    assert "invalid mem access" in msg  # the verifier's own words
    assert kernel_prog_ids() <= before  # the programs that did load were released


def test_cli_reports_verifier_error_without_traceback(
    objects: dict[str, Path], tmp_path: Path
) -> None:
    # a throwaway subcommand that loads the broken object, run through the real entry point
    (tmp_path / "loadbad_cmd.py").write_text(textwrap.dedent(f"""
        import click
        from sysward.kernel import BpfObject

        @click.command()
        def loadbad() -> None:
            with BpfObject.open({str(objects["bad"])!r}) as obj:
                obj.load()
    """))
    script = ("import sys; from sysward import cli; "
              "cli._COMMANDS['loadbad'] = ('loadbad_cmd', 'loadbad', 'test'); "
              "sys.exit(cli.main(['loadbad']))")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # libbpf's own log is captured, not printed
    assert lines[0].startswith("sysward: error: loading program 'bad_deref'")


def test_ensure_tracefs_mounts_it_when_absent() -> None:
    # a private mount namespace where tracefs is unmounted: the host's mount stays untouched
    code = ("from sysward.kernel.tracefs import ensure_tracefs, tracefs_root; "
            "assert tracefs_root() is None, 'still mounted'; "
            "print(ensure_tracefs()); "
            "print(any(l.split()[1:3] == ['/sys/kernel/tracing', 'tracefs'] "
            "for l in open('/proc/self/mounts')))")
    script = f"umount /sys/kernel/tracing && exec {sys.executable} -c \"{code}\""
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/sys/kernel/tracing", "True"]
