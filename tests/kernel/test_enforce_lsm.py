"""Deny with BPF LSM programs (exec, open, ptrace refused with EPERM before they happen).

Only where the kernel lets LSM programs attach and runs them: on kernels that refuse them
(the project's VMs: trampolines are not allowed) or do not run them (BPF LSM built but not in
the active LSM list) these tests skip with the reason.  They are marked ``lsm``:
tests/conftest.py exempts them from SYSWARD_REQUIRE_KERNEL=1's skip-is-failure rule, and
``make test-kernels`` runs them on kernels where BPF LSM is active (scripts/kernel-matrix).

Each deny test shows that the action never happened, not only that the call failed: a FIFO
that no reader ever opened, a program whose first act would leave a file, a tracee that is
still untraced; and a control in the same run (another file, another name) that the deny is
the rule's and nothing else's.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from agent_harness import AgentProcess
from enforce_helpers import copied_binary, enforcer, rules, started, wait_reports

from sysward.config import EnforceConfig
from sysward.enforce import EnforceError, Enforcer, lsm_available
from sysward.rules import load_rules_text

pytestmark = pytest.mark.lsm

_REASON = ("this kernel refuses or does not run BPF LSM programs (sysward doctor: prog:lsm); "
           "deny on exec/open/ptrace needs them")


@pytest.fixture(scope="module")
def lsm() -> None:
    if not lsm_available():
        pytest.skip(_REASON)


def _py(code: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


_PTRACE = """
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.prctl(15, {comm!r}.encode(), 0, 0, 0)  # PR_SET_NAME: the name the rule tests
    if libc.ptrace(16, {pid}, None, None) != 0:  # PTRACE_ATTACH
        print(ctypes.get_errno()); sys.exit(0)
    os.waitpid({pid}, 0)
    libc.ptrace(17, {pid}, None, None)  # PTRACE_DETACH
    print(0)
"""


def _attach_errno(comm: str, pid: int) -> int:
    """errno of PTRACE_ATTACH to ``pid`` from a child named ``comm`` (0: attached)."""
    p = _py(_PTRACE.format(comm=comm, pid=pid))
    assert p.returncode == 0, p.stderr
    return int(p.stdout.strip())


def _tracer_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no TracerPid in /proc/{pid}/status")


def test_without_lsm_deny_on_open_is_refused_or_falls_back(tmp_path: Path) -> None:
    """Runs everywhere: where LSM is missing, deny on open is refused at load with the reason,
    and deny_fallback_kill turns it into a kill."""
    if lsm_available():
        pytest.skip("this kernel allows LSM programs: the refusal path does not apply")
    text = rules(("deny canary", f"evt.type = openat and fd.name = {tmp_path}/c", "deny"))
    res = load_rules_text(text)
    with pytest.raises(EnforceError, match="deny is impossible for evt.type openat: this kernel "
                                           "does not run BPF LSM programs"):
        Enforcer.from_rules(res.ruleset, EnforceConfig(mode="on"))
    enf = Enforcer.from_rules(res.ruleset, EnforceConfig(mode="on", deny_fallback_kill=True))
    assert enf is not None and all(s.kill for s in enf.plan.slots)


def test_lsm_deny_open(lsm: None, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.write_text("CANARY\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    other = tmp_path / "other"
    other.write_text("OTHER\n")
    comm = f"swop-{uuid.uuid4().hex[:6]}"
    enf = enforcer(rules(
        ("deny canary", f"evt.type = openat and fd.name = {canary}", "deny"),
        ("deny fifo", f"evt.type = openat and fd.name = {fifo} and proc.name = {comm}", "deny")))
    with started(enf):
        p = subprocess.run(["cat", str(canary)], capture_output=True, text=True)
        assert p.returncode == 1 and "Operation not permitted" in p.stderr
        assert "CANARY" not in p.stdout  # the content was never read
        # The open is refused before the file is opened at all: a FIFO opened for reading
        # registers a reader, and a writer's non-blocking open fails with ENXIO only while
        # no reader has it open.  The refused child stays alive while the writer tries.
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import ctypes, os, sys
            ctypes.CDLL(None).prctl(15, {comm!r}.encode(), 0, 0, 0)  # PR_SET_NAME
            try:
                os.open({str(fifo)!r}, os.O_RDONLY | os.O_NONBLOCK)
                print("OPENED", flush=True)
            except PermissionError:
                print("EPERM", flush=True)
            sys.stdin.read()
            """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "EPERM"
            with pytest.raises(OSError) as exc:
                os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # this process is not denied ...
            assert exc.value.errno == errno.ENXIO  # ... and finds no reader: none ever opened
        finally:
            child.communicate("", timeout=20)
        assert subprocess.run(["cat", str(other)], capture_output=True,
                              text=True).stdout == "OTHER\n"
        # both refusals happened already: their reports arrive in one drain
        reps = wait_reports(enf, lambda r: r.action == "denied" and r.hook == "open")
    assert {r.rules for r in reps} == {("deny fifo",), ("deny canary",)}
    assert next(r.comm for r in reps if r.rules == ("deny fifo",)) == comm


def test_lsm_deny_exec(lsm: None, tmp_path: Path) -> None:
    bad = copied_binary(tmp_path, "touch", "denied-")
    good = copied_binary(tmp_path, "touch", "allowed-")
    marker = tmp_path / "marker"
    enf = enforcer(rules(("deny exec", f"evt.type = execve and proc.exepath = {bad}", "deny")))
    with started(enf):
        with pytest.raises(PermissionError) as exc:
            subprocess.run([str(bad), str(marker)])
        assert exc.value.errno == errno.EPERM
        assert not marker.exists()  # the program never ran
        subprocess.run([str(good), str(marker)], check=True)
        assert marker.exists()  # the same program under another path runs
        reps = wait_reports(enf, lambda r: r.action == "denied" and r.hook == "exec")
    assert reps and reps[0].rules == ("deny exec",)


def test_lsm_deny_ptrace(lsm: None) -> None:
    comm = f"swtr-{uuid.uuid4().hex[:6]}"
    target = subprocess.Popen(["sleep", "30"])
    try:
        enf = enforcer(rules(("deny ptrace", f"evt.type = ptrace and proc.name = {comm}",
                              "deny")))
        with started(enf):
            assert _attach_errno(comm, target.pid) == errno.EPERM
            assert _tracer_of(target.pid) == 0  # never traced
            reps = wait_reports(enf, lambda r: r.action == "denied" and r.hook == "ptrace")
            assert _attach_errno("swtr-control", target.pid) == 0  # another name may attach
        assert reps and reps[0].comm == comm and reps[0].rules == ("deny ptrace",)
    finally:
        target.kill()
        target.wait()


def test_lsm_audit_mode_denies_nothing(lsm: None, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.write_text("CANARY\n")
    enf = enforcer(rules(("deny canary", f"evt.type = openat and fd.name = {canary}", "deny")),
                   mode="audit")
    with started(enf):
        p = subprocess.run(["cat", str(canary)], capture_output=True, text=True)
        reps = wait_reports(enf, lambda r: r.hook == "open" and r.rules == ("deny canary",))
    assert p.returncode == 0 and p.stdout == "CANARY\n"
    assert reps and reps[0].action == "would-deny"


def test_lsm_deny_through_the_agent(lsm: None, tmp_path: Path) -> None:
    """The agent loads deny rules, the kernel refuses, and each alert says `denied`."""
    canary = tmp_path / "canary"
    canary.write_text("CANARY\n")
    comm = f"swtr-{uuid.uuid4().hex[:6]}"
    rule_file = tmp_path / "deny.yaml"
    rule_file.write_text(rules(
        ("Deny Canary Open", f"evt.type in (open, openat, openat2) and fd.name = {canary}",
         "deny"),
        ("Deny Ptrace By Name", f"evt.type = ptrace and proc.name = {comm}", "deny")))
    target = subprocess.Popen(["sleep", "30"])
    ag = AgentProcess(tmp_path, "--rules", str(rule_file), "--set", "enforce.mode=on")
    try:
        p = subprocess.run(["cat", str(canary)], capture_output=True, text=True)
        assert p.returncode == 1 and "CANARY" not in p.stdout
        assert _attach_errno(comm, target.pid) == errno.EPERM
        opened = ag.wait_alert("Deny Canary Open")
        traced = ag.wait_alert("Deny Ptrace By Name")
    finally:
        target.send_signal(signal.SIGKILL)
        target.wait()
        code, _ = ag.stop()
    assert code == 0
    assert opened["action_taken"] == "denied", opened
    assert traced["action_taken"] == "denied", traced
