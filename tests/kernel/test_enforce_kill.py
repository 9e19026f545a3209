"""Kill in the kernel: on exec (before the program's first instruction) and on open (before
the opener sees a byte), plus the safety rules that spare the agent and protected processes."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from enforce_helpers import (
    copied_binary,
    enforcer,
    rules,
    started,
    wait_reports,
)

from sysward.alert import Alert, Priority
from sysward.events.model import Event


@pytest.fixture()
def canary(tmp_path: Path) -> Path:
    p = tmp_path / "canary.txt"
    p.write_text("CANARY-7f3e secret text\n")
    return p


def test_kill_on_exec_before_first_instruction(tmp_path: Path) -> None:
    bad = copied_binary(tmp_path, "touch", "forbidden-")
    good = copied_binary(tmp_path, "touch", "allowed-")
    enf = enforcer(rules(("no forbidden binary", f"evt.type = execve and proc.exepath = {bad}",
                          "kill")))
    with started(enf):
        marker = tmp_path / "marker"
        p = subprocess.run([str(bad), str(marker)], capture_output=True)
        assert p.returncode == -signal.SIGKILL
        assert not marker.exists()  # touch never ran a single instruction of its own
        reps = wait_reports(enf, lambda r: r.comm == bad.name[:15])
        assert [r.action for r in reps] == ["killed"]
        assert reps[0].hook == "exec" and reps[0].rules == ("no forbidden binary",)
        # the same program under another path runs
        marker2 = tmp_path / "marker2"
        q = subprocess.run([str(good), str(marker2)], capture_output=True)
        assert q.returncode == 0 and marker2.exists()
        assert enf.counters()["killed"] == 1


def test_kill_on_exec_by_comm_and_prefix(tmp_path: Path) -> None:
    sub = tmp_path / "drop"
    sub.mkdir()
    bad = copied_binary(sub, "true", "x")
    named = copied_binary(tmp_path, "true", "byname")
    enf = enforcer(rules(
        ("no binaries from drop dir", f"evt.type = execve and proc.exepath startswith {sub}/",
         "kill"),
        ("no byname", f"evt.type = execve and proc.name in ({named.name}, nothing-else)", "kill"),
    ))
    with started(enf):
        assert subprocess.run([str(bad)]).returncode == -signal.SIGKILL
        assert subprocess.run([str(named)]).returncode == -signal.SIGKILL
        assert subprocess.run(["true"]).returncode == 0


def test_kill_on_open_reader_never_sees_the_data(tmp_path: Path, canary: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text("harmless\n")
    enf = enforcer(rules(("no canary", f"evt.type in (open, openat, openat2) and "
                                       f"fd.name = {canary}", "kill")))
    with started(enf):
        p = subprocess.run(["cat", str(canary)], capture_output=True, text=True)
        assert p.returncode == -signal.SIGKILL
        assert "CANARY" not in p.stdout
        # a relative path and a symlink reach the same file: the kernel sees the opened file
        link = tmp_path / "link"
        link.symlink_to(canary)
        r = subprocess.run(["cat", "link"], capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == -signal.SIGKILL and "CANARY" not in r.stdout
        q = subprocess.run(["cat", str(other)], capture_output=True, text=True)
        assert q.returncode == 0 and q.stdout == "harmless\n"
        reps = wait_reports(enf, lambda r: r.comm == "cat")
        assert reps and {r.action for r in reps} == {"killed"}


def test_agent_is_never_killed_and_alert_says_so(canary: Path) -> None:
    enf = enforcer(rules(("no canary", f"evt.type = openat and fd.name = {canary}", "kill")))
    with started(enf):
        assert canary.read_text().startswith("CANARY")  # we are the agent: still alive
        reps = wait_reports(enf, lambda r: r.pid == os.getpid())
        assert reps[0].action == "spared: the sysward agent"
        enf._pending.clear()  # noqa: SLF001 - annotate() below must find a fresh report
        with open(canary) as f:
            f.read()
        rule = next(r for r in enf.plan.rules)
        alert = Alert(time=0, rule=rule.name, priority=Priority.WARNING, output="x")
        enf.annotate(alert, rule, Event(ts=0, type="openat", pid=os.getpid()))
        assert alert.action_taken == "spared: the sysward agent"


def test_never_kill_allowlist_and_protected_tgids(tmp_path: Path, canary: Path) -> None:
    cat = copied_binary(tmp_path, "cat", "trusted-cat-")
    enf = enforcer(rules(("no canary", f"evt.type = openat and fd.name = {canary}", "kill")),
                   never_kill=[str(cat)])
    with started(enf):
        p = subprocess.run([str(cat), str(canary)], capture_output=True, text=True)
        assert p.returncode == 0 and "CANARY" in p.stdout
        reps = wait_reports(enf, lambda r: r.comm == cat.name[:15])
        assert reps[0].action == "spared: its executable is in enforce.never_kill"
        # a tgid user space protects (PID 1 and the agent always are): a stopped child
        # is protected, then opens the canary and survives
        child = subprocess.Popen(["sh", "-c", f"kill -STOP $$; exec cat {canary}"],
                                 stdout=subprocess.PIPE, text=True)
        _wait_stopped(child.pid)
        enf.protect(child.pid)
        os.kill(child.pid, signal.SIGCONT)
        out, _ = child.communicate(timeout=5)
        assert child.returncode == 0 and "CANARY" in out  # exec keeps the tgid
        # PID 1 and the agent are in the kernel's protected set from the start
        prot = enf._obj.map("enf_protected")  # noqa: SLF001
        keys = {int.from_bytes(k, "little") for k in prot.keys()}  # noqa: SIM118 - BpfMap is not iterable
        assert {1, os.getpid(), child.pid} <= keys


def _wait_stopped(pid: int) -> None:
    import time

    for _ in range(200):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.01)
    raise AssertionError("child did not stop")


def test_audit_mode_kills_nothing_and_says_would_kill(tmp_path: Path, canary: Path) -> None:
    bad = copied_binary(tmp_path, "touch", "audited-")
    enf = enforcer(rules(
        ("audit canary", f"evt.type = openat and fd.name = {canary}", "kill"),
        ("audit exec", f"evt.type = execve and proc.exepath = {bad}", "kill"),
    ), mode="audit")
    with started(enf):
        p = subprocess.run(["cat", str(canary)], capture_output=True, text=True)
        assert p.returncode == 0 and "CANARY" in p.stdout
        marker = tmp_path / "m"
        assert subprocess.run([str(bad), str(marker)]).returncode == 0 and marker.exists()
        reps = wait_reports(enf, lambda r: r.comm in ("cat", bad.name[:15]))
        reps += wait_reports(enf, lambda r: r.comm in ("cat", bad.name[:15]), timeout=0.3)
        assert {(r.hook, r.action) for r in reps} == {("open", "would-kill"),
                                                      ("exec", "would-kill")}
        assert enf.counters()["killed"] == 0


def test_close_leaves_no_program_and_config_drives_it(tmp_path: Path) -> None:
    import orjson

    from sysward.config import Config
    from sysward.enforce import Enforcer
    from sysward.rules import load_rules_text

    text = rules(("gone", f"evt.type = execve and proc.exepath = {tmp_path}/nothing", "kill"),
                 ("just alert", "evt.type = execve and proc.name = x", "alert"))
    res = load_rules_text(text)
    cfg = Config()
    assert Enforcer.from_rules(res.ruleset, cfg) is None  # enforcement is off by default
    cfg.enforce.mode = "on"
    enf = Enforcer.from_rules(res.ruleset, cfg)
    assert enf is not None and enf.enforced_rules == {"gone"}
    enf.start()
    ids = {enf._obj.program(n).id for n in enf.attached}  # noqa: SLF001
    assert enf.attached == ["enf_exec"]  # only the hook class the rules need
    enf.close()
    enf.close()
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                         check=True).stdout
    assert not ids & {p["id"] for p in orjson.loads(out)}
