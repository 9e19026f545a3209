"""deploy/systemd/sysward.service: verified by systemd itself, hardened, and still able to run BPF.

`systemd-analyze verify` and `systemd-analyze security --offline` work without systemd as PID 1
(Debian's systemd package; the Makefile's DEB_PKGS installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "sysward.service"
INSTALLED_BINARY = "/opt/sysward/bin/sysward"  # where docs/deployment.md installs the agent
BPF_CAPS = {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_RESOURCE", "CAP_SYS_ADMIN"}
MAX_EXPOSURE = 5.0  # systemd's scale: 0 (locked down) .. 10 (unprotected); 4.1 when written


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: run 'make setup' (Debian package systemd)")
    return path


def _settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def _unit_for_this_machine(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this checkout's real `sysward` entry point.

    verify checks that ExecStart's program exists; here it is in the virtualenv, not in
    /opt/sysward.  Only that path changes.
    """
    binary = Path(sys.executable).with_name("sysward")
    assert binary.exists(), f"{binary} missing: pip install -e ."
    text = UNIT.read_text() if text is None else text
    assert f"ExecStart={INSTALLED_BINARY} " in text
    unit = tmp_path / "sysward.service"
    unit.write_text(text.replace(f"ExecStart={INSTALLED_BINARY} ", f"ExecStart={binary} "))
    return unit


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_systemd_analyze(), "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_systemd_analyze_verify_passes_without_a_warning(tmp_path: Path) -> None:
    result = _verify(_unit_for_this_machine(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


def test_verify_catches_a_misspelled_directive(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict")
    result = _verify(_unit_for_this_machine(tmp_path, broken))
    assert "Unknown key 'ProtectSytem'" in result.stderr


def test_exposure_score_stays_low(tmp_path: Path) -> None:
    result = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", "--no-pager",
         str(_unit_for_this_machine(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    m = re.search(r"Overall exposure level for sysward\.service: ([0-9.]+)", result.stdout)
    assert m, result.stdout + result.stderr
    assert float(m[1]) <= MAX_EXPOSURE, result.stdout


def test_capabilities_allow_bpf_and_nothing_takes_them_away() -> None:
    s = _settings()
    assert set(s["CapabilityBoundingSet"][0].split()) >= BPF_CAPS
    assert set(s["AmbientCapabilities"][0].split()) >= BPF_CAPS
    assert s["LimitMEMLOCK"] == ["infinity"]
    # Settings that would break the agent: a private user namespace has no CAP_BPF on the
    # host, and a /proc limited to the service's own processes hides the process table.
    for forbidden in ("PrivateUsers", "ProtectProc", "ProcSubset", "PrivatePIDs"):
        assert forbidden not in s, f"{forbidden}= breaks BPF or the process table"
    syscalls = s["SystemCallFilter"][0].split()
    assert {"bpf", "perf_event_open"} <= set(syscalls)  # not in @system-service
    assert s["SystemCallErrorNumber"] == ["EPERM"]


def test_hardening_and_lifecycle() -> None:
    s = _settings()
    assert s["ExecStart"] == [f"{INSTALLED_BINARY} run --config /etc/sysward/config.yaml"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"]
    assert s["ProtectSystem"] == ["strict"]
    assert s["ProtectHome"] in (["yes"], ["read-only"])
    assert s["PrivateTmp"] == ["yes"]
    assert s["NoNewPrivileges"] == ["yes"]
    assert "/var/lib/sysward" in s["ReadWritePaths"][0].split()
    assert s["WantedBy"] == ["multi-user.target"]


def _expand_syscall_group(group: str, seen: dict[str, frozenset[str]]) -> frozenset[str]:
    if group not in seen:
        out = subprocess.run(
            [_systemd_analyze(), "syscall-filter", "--no-pager", group],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        names: set[str] = set()
        for line in out.splitlines()[1:]:
            word = line.strip()
            if word.startswith("@"):
                names |= _expand_syscall_group(word, seen)
            elif word and not word.startswith("#"):
                names.add(word)
        seen[group] = frozenset(names)
    return seen[group]


# What the agent calls: libbpf (bpf, perf_event_open + ioctl to attach tracepoints, mmap and
# epoll for the ring buffer, prlimit64 for RLIMIT_MEMLOCK), mount (tracefs when absent), the
# /proc scan, enforcement's user-space kill, and the outputs' sockets.
AGENT_SYSCALLS = [
    "bpf",
    "perf_event_open",
    "ioctl",
    "mmap",
    "munmap",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "prlimit64",
    "mount",
    "openat",
    "readlinkat",
    "getdents64",
    "newfstatat",
    "statx",
    "kill",
    "pidfd_open",
    "pidfd_send_signal",
    "socket",
    "connect",
    "sendto",
    "sendmsg",
    "recvfrom",
    "bind",
    "listen",
    "accept4",
    "clone3",
    "futex",
    "getrandom",
]


def test_syscall_filter_allows_what_the_agent_calls() -> None:
    seen: dict[str, frozenset[str]] = {}
    allowed: set[str] = set()
    for word in _settings()["SystemCallFilter"][0].split():
        allowed |= _expand_syscall_group(word, seen) if word.startswith("@") else {word}
    assert len(allowed) > 100  # the groups really expanded
    assert [name for name in AGENT_SYSCALLS if name not in allowed] == []
    assert "bpf" not in _expand_syscall_group("@system-service", seen)  # why it is listed
