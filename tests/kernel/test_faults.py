"""Faults an operator will meet: a full disk under the outputs, SIGKILL of the agent, a storm
of SIGHUPs.  Real tmpfs mounts, real agents, real BPF programs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from agent_harness import AgentProcess, bpf_prog_ids

from sysward.alert import Alert, Priority
from sysward.errors import SyswardError
from sysward.outputs import AlertStore, FileOutput, SqliteOutput

RULE_A = """
- rule: Test Fault Marker Opened
  desc: test rule
  condition: evt.type in (open, openat) and fd.name startswith /tmp/sysward-faultmarker
  output: fault marker opened (file=%fd.name)
  priority: WARNING
"""


def _alert(n: int) -> Alert:
    return Alert(time=time.time_ns(), rule="r", priority=Priority.WARNING,
                 output="x" * 400 + f" n={n}", output_fields={"n": n}, tags=[], hostname="h")


@contextlib.contextmanager
def small_tmpfs(tmp_path: Path, size: str = "256k") -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path) -> Path:
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):  # until ENOSPC
            while True:
                os.write(fd, b"\0" * 4096)
        with contextlib.suppress(OSError):  # the last bytes of the last page
            while True:
                os.write(fd, b"\0")
    finally:
        os.close(fd)
    return filler


def _touch(name: str) -> None:
    path = f"/tmp/sysward-faultmarker-{name}"
    with open(path, "w"):
        pass
    os.unlink(path)


def test_disk_full_under_the_file_output(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path) as mnt:
        out = FileOutput(mnt / "alerts.jsonl", backups=0)
        try:
            for n in range(20):
                out.emit(_alert(n))
            assert out.flush(5.0)
            filler = _fill(mnt)
            for n in range(20, 40):
                out.emit(_alert(n))
            out.flush(5.0)
            st = out.stats()
            assert st["failed"] > 0 and st["sent"] + st["failed"] + st["dropped"] == 40
            filler.unlink()  # space again: the output goes on
            for n in range(40, 45):
                out.emit(_alert(n))
            assert out.flush(5.0)
        finally:
            out.close(1.0)
        lines = (mnt / "alerts.jsonl").read_bytes().split(b"\n")
    ns = [json.loads(x)["output_fields"]["n"] for x in lines if x.strip()]
    assert ns[:20] == list(range(20)) and ns[-5:] == list(range(40, 45))
    assert len(ns) == len(set(ns))  # nothing written twice


def test_disk_full_under_the_store(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path, "512k") as mnt:
        db = mnt / "alerts.db"
        out = SqliteOutput(db, retention_interval_s=0)
        try:
            for n in range(20):
                out.emit(_alert(n))
            assert out.flush(5.0)
            filler = _fill(mnt)
            for n in range(20, 400):
                out.emit(_alert(n))
            out.flush(10.0)
            st = out.stats()
            assert st["failed"] > 0 and st["sent"] + st["failed"] + st["dropped"] == 400
            assert st["recreated"] == 0  # a full disk is not a corrupt store
            filler.unlink()
            out.emit(_alert(1000))
            assert out.flush(5.0)
        finally:
            out.close(1.0)
        with AlertStore(db) as store:
            ns = [r.alert.output_fields["n"] for r in store.query()]
    assert ns[:20] == list(range(20)) and ns[-1] == 1000 and len(ns) == len(set(ns))


def test_sigkill_leaves_no_program_and_a_new_agent_works(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULE_A)
    before = bpf_prog_ids()
    (tmp_path / "a1").mkdir()
    ag = AgentProcess(tmp_path / "a1", "--rules", str(rules))
    ours = bpf_prog_ids() - before
    assert ours
    ag.proc.kill()
    ag.proc.wait(5)
    deadline = time.monotonic() + 20
    while bpf_prog_ids() & ours and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not bpf_prog_ids() & ours, "programs of the killed agent are still loaded"
    (tmp_path / "a2").mkdir()
    ag2 = AgentProcess(tmp_path / "a2", "--rules", str(rules))
    try:
        _touch("after-kill")
        ag2.wait_alert("Test Fault Marker Opened", lambda a: "after-kill" in a["output"])
    finally:
        code, _ = ag2.stop()
    assert code == 0


def test_a_hundred_sighups_in_a_row(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULE_A)
    ag = AgentProcess(tmp_path, "--rules", str(rules))
    try:
        progs = bpf_prog_ids()
        for _ in range(100):
            ag.signal(signal.SIGHUP)
        ag.wait_stderr("reloaded")
        time.sleep(2.0)  # let the last requested reload finish
        assert ag.proc.poll() is None
        reloads = sum("reloaded" in x for x in ag.stderr)
        assert 1 <= reloads <= 100  # requests that arrive during a reload are coalesced
        assert not [x for x in ag.stderr if "Traceback" in x or "reload failed" in x]
        assert len(bpf_prog_ids()) <= len(progs) + 2  # no programs piling up
        _touch("after-hups")
        ag.wait_alert("Test Fault Marker Opened", lambda a: "after-hups" in a["output"])
    finally:
        code, _ = ag.stop()
    assert code == 0


def test_store_deleted_under_a_running_agent(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULE_A)
    ag = AgentProcess(tmp_path, "--rules", str(rules))
    try:
        _touch("before-delete")
        ag.wait_alert("Test Fault Marker Opened")
        time.sleep(0.5)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{ag.db}{suffix}").unlink(missing_ok=True)
        _touch("after-delete")
        ag.wait_alert("Test Fault Marker Opened", lambda a: "after-delete" in a["output"])
        ag.wait_stderr("was deleted or replaced")
        deadline = time.monotonic() + 5
        outputs: list[str] = []
        while time.monotonic() < deadline and not any("after-delete" in o for o in outputs):
            time.sleep(0.2)
            # read-only (sqlite3.connect would create an empty file at the path)
            with contextlib.suppress(SyswardError), AlertStore(ag.db) as store:
                outputs = [r.alert.output for r in store.query()]
        assert any("after-delete" in o for o in outputs)
        assert not any("before-delete" in o for o in outputs)  # that file is gone
    finally:
        code, _ = ag.stop()
    assert code == 0
