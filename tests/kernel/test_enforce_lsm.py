"""Deny with BPF LSM programs (exec, open, ptrace refused with EPERM).

Only where the kernel lets LSM programs attach: on kernels that refuse them (the project's
VMs: trampolines are not allowed) these tests skip with the reason.  They are marked ``lsm``:
tests/conftest.py exempts them from SYSWARD_REQUIRE_KERNEL=1's skip-is-failure rule.
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest
from enforce_helpers import copied_binary, enforcer, rules, started

from sysward.config import EnforceConfig
from sysward.enforce import EnforceError, Enforcer, lsm_available
from sysward.rules import load_rules_text

pytestmark = pytest.mark.lsm

_REASON = ("this kernel refuses BPF LSM programs (sysward doctor: prog:lsm); deny on exec/open/"
           "ptrace needs them")


@pytest.fixture(scope="module")
def lsm() -> None:
    if not lsm_available():
        pytest.skip(_REASON)


def test_without_lsm_deny_on_open_is_refused_or_falls_back(tmp_path: Path) -> None:
    """Runs everywhere: where LSM is missing, deny on open is refused at load with the reason,
    and deny_fallback_kill turns it into a kill."""
    if lsm_available():
        pytest.skip("this kernel allows LSM programs: the refusal path does not apply")
    text = rules(("deny canary", f"evt.type = openat and fd.name = {tmp_path}/c", "deny"))
    res = load_rules_text(text)
    with pytest.raises(EnforceError, match="deny is impossible for evt.type openat: this kernel "
                                           "refuses BPF LSM programs"):
        Enforcer.from_rules(res.ruleset, EnforceConfig(mode="on"))
    enf = Enforcer.from_rules(res.ruleset, EnforceConfig(mode="on", deny_fallback_kill=True))
    assert enf is not None and all(s.kill for s in enf.plan.slots)


def test_lsm_deny_open(lsm: None, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.write_text("CANARY\n")
    enf = enforcer(rules(("deny canary", f"evt.type = openat and fd.name = {canary}", "deny")))
    with started(enf):
        p = subprocess.run(["cat", str(canary)], capture_output=True, text=True)
        assert p.returncode == 1 and "Operation not permitted" in p.stderr
        assert "CANARY" not in p.stdout


def test_lsm_deny_exec(lsm: None, tmp_path: Path) -> None:
    bad = copied_binary(tmp_path, "true", "denied-")
    enf = enforcer(rules(("deny exec", f"evt.type = execve and proc.exepath = {bad}", "deny")))
    with started(enf):
        with pytest.raises(PermissionError) as exc:
            subprocess.run([str(bad)])
        assert exc.value.errno == errno.EPERM
