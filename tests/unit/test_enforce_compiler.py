"""The enforceable subset: what compiles into kernel slots, and the sentence for what does not."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from sysward.enforce.abi import CFG, EnfType, Kind
from sysward.enforce.compiler import Plan, compile_rules, first_refusal
from sysward.enforce.maps import build_tables
from sysward.rules import load_rules_text


def _plan(cond: str, action: str = "kill", extra: str = "", **kw: Any) -> Plan:
    text = (f"- rule: r\n  desc: d\n  condition: {cond}\n  output: o\n  priority: WARNING\n"
            f"  action: {action}\n{extra}")
    res = load_rules_text(text, "t.yaml")
    res.raise_for_errors()
    return compile_rules(res.ruleset.rules, **kw)


def _refusal(cond: str, action: str = "kill", **kw: Any) -> str:
    plan = _plan(cond, action, **kw)
    text = first_refusal(plan)
    assert text is not None, "expected a refusal"
    assert text.startswith(f"rule 'r' (t.yaml:1) has action {action}, but ")
    return text


def test_exec_by_path_is_one_slot() -> None:
    plan = _plan("evt.type in (execve, execveat) and proc.exepath = /usr/bin/nc")
    assert not plan.refused
    (slot,) = plan.slots
    assert slot.types == {EnfType.EXEC} and slot.kill and not slot.audit
    assert (b"/usr/bin/nc", True) in slot.pos[Kind.EXE].values


def test_or_and_not_become_alternatives() -> None:
    plan = _plan("evt.type = openat and (fd.name = /etc/shadow or fd.name startswith /root/.ssh/)"
                 " and not proc.name in (sshd, passwd) and user.uid != 0")
    assert len(plan.slots) == 2
    for s in plan.slots:
        assert s.neg[Kind.COMM] == {b"sshd", b"passwd"}
        assert s.neg[Kind.UID] == {0}
    kinds = sorted(next(iter(s.pos[Kind.FILE].values))[1] for s in plan.slots)
    assert kinds == [False, True]  # one prefix, one exact


def test_network_fields_and_container() -> None:
    plan = _plan("evt.type = connect and fd.rnet = 10.0.0.0/8 and fd.rport in (22, 443) and "
                 "container.id != host", "deny")
    (slot,) = plan.slots
    assert not slot.kill
    assert slot.pos[Kind.ADDR].values == {(b"\0" * 10 + b"\xff\xff\x0a\0\0\0", 104)}
    assert slot.pos[Kind.PORT].values == {22, 443}
    assert Kind.CONTAINER in slot.pos
    host = _plan("evt.type = connect and fd.rport = 1 and container.id = host", "deny")
    assert Kind.CONTAINER in host.slots[0].neg


def test_audit_mode_and_per_rule_audit() -> None:
    assert _plan("evt.type = ptrace and proc.name = gdb", mode="audit").slots[0].audit
    plan = _plan("evt.type = ptrace and proc.name = gdb", extra="  enforce_mode: audit\n")
    assert plan.slots[0].audit


@pytest.mark.parametrize(("cond", "action", "part"), [
    ("evt.type = openat and proc.cmdline contains curl", "kill",
     "'proc.cmdline contains curl' tests proc.cmdline, which the kernel cannot see at the hook"),
    ("evt.type = openat and fd.name contains shadow", "kill",
     "'fd.name contains shadow' uses operator 'contains', which the kernel cannot apply to "
     "fd.name"),
    ("evt.type = chmod and proc.name = x", "kill",
     "the kernel has no enforcement hook for evt.type chmod"),
    ("proc.name = x", "kill", "its condition does not restrict evt.type"),
    ("evt.type = execve and fd.rport = 4", "kill",
     "'fd.rport = 4' cannot be decided at the execve hook"),
    ("evt.type = openat and fd.name = etc/shadow", "kill", "is not an absolute path"),
    ("evt.type = execve and user.uid = 0", "kill", "would kill on every execve"),
    ("evt.type = openat and fd.name = /a and fd.name = /b", "kill",
     "the kernel can test fd.name positively once per alternative"),
    ("evt.type = connect and container.id = abcdef123456", "deny",
     "the kernel tells a container from the host"),
    ("evt.type = openat and fd.name = /etc/shadow", "deny",
     "deny is impossible for evt.type openat: this kernel does not run BPF LSM programs"),
    ("evt.type = setuid and proc.name = su", "deny",
     "deny is impossible for evt.type setuid: no kernel hook can refuse it"),
    ("evt.type = openat and fd.name glob '/tmp/*.sh'", "kill",
     "only a glob with a single trailing '*'"),
])
def test_refusals_name_the_part(cond: str, action: str, part: str) -> None:
    text = _refusal(cond, action)
    assert part in text
    assert text.endswith("to load it as an alert-only rule.")


def test_alert_only_on_request() -> None:
    plan = _plan("evt.type = openat and proc.cmdline contains x",
                 extra="  enforce_fallback: alert\n")
    assert not plan.refused and not plan.slots and plan.alert_only == {"r"}
    assert "loaded as an alert-only rule" in plan.warnings[0]


def test_deny_falls_back_to_kill_when_configured() -> None:
    plan = _plan("evt.type = openat and fd.name = /etc/shadow", "deny", deny_fallback_kill=True)
    assert plan.slots[0].kill
    lsm = _plan("evt.type = openat and fd.name = /etc/shadow", "deny", lsm_available=True)
    assert lsm.slots[0].lsm and not lsm.slots[0].kill


def test_symlinked_dirs_are_added_resolved(tmp_path) -> None:  # type: ignore[no-untyped-def]
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    plan = _plan(f"evt.type = execve and proc.exepath = {tmp_path}/alias/x")
    vals = plan.slots[0].pos[Kind.EXE].values
    assert (f"{tmp_path}/alias/x".encode(), True) in vals
    assert (f"{real}/x".encode(), True) in vals


def test_tables_merge_prefixes_and_masks() -> None:
    text = "".join(
        f"- rule: r{i}\n  desc: d\n  condition: evt.type = openat and {c}\n  output: o\n"
        f"  priority: WARNING\n  action: kill\n"
        for i, c in enumerate(["fd.name startswith /etc/", "fd.name = /etc/shadow",
                               "fd.name = /etc/x and not proc.name = ok"]))
    res = load_rules_text(text)
    plan = compile_rules(res.ruleset.rules)
    t = build_tables(plan)
    # /etc/shadow is below /etc/: its entry carries both rules' bits
    assert t.file[(b"/etc/shadow", True)] == [0b011, 0]
    assert t.file[(b"/etc/", False)] == [0b001, 0]
    assert t.comm[b"ok"] == [0, 0b100]
    cfg = CFG.unpack(t.config)
    assert cfg[EnfType.OPEN] == 0b111
    assert cfg[16 + Kind.FILE] == 0b111 and cfg[16 + 8 + Kind.COMM] == 0b100
    assert cfg[-3] == 0b111 and cfg[-2] == 0 and cfg[-1] == 0
    assert struct.calcsize("<16Q8Q8QQQQ") == len(t.config)


def test_actions_other_than_kill_deny_are_ignored() -> None:
    assert not _plan("proc.name = x", "alert").slots
