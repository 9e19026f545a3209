"""`sysward doctor` on the real kernel: its verdicts must match what really loads here."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from sysward.cli.doctor_cmd import doctor
from sysward.kernel import BpfError, BpfObject
from sysward.kernel.probe import WATCHED_SYSCALLS, active_lsms
from sysward.kernel.tracefs import syscall_tracepoints

SRC = Path(__file__).parent / "bpf" / "loader_test.bpf.c"
ARCH = {"x86_64": "x86", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def doctor_json() -> dict[str, dict[str, object]]:
    proc = subprocess.run([sys.executable, "-m", "sysward", "doctor", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert proc.returncode == (0 if report["ready"] else 1)
    return {c["name"]: c for c in report["capabilities"]}


def lsm_really_works(tmp_path: Path) -> bool:
    """Load and attach an LSM program through the loader itself, independently of doctor."""
    out = tmp_path / "lsm.bpf.o"
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{ARCH}",
                    f"-I/usr/include/{platform.machine()}-linux-gnu", "-DLOADER_TEST_LSM",
                    "-c", str(SRC), "-o", str(out)], check=True, capture_output=True)
    with BpfObject.open(out) as obj:
        for prog in obj.programs:
            prog.set_autoload(prog.name == "allow_file_open")
        try:
            obj.load()
            obj.program("allow_file_open").attach()
        except BpfError:
            return False
    return True


def test_doctor_matches_the_kernel(tmp_path: Path) -> None:
    caps = doctor_json()
    for name in ("root", "btf", "tracefs", "prog:tracepoint", "ringbuf", "syscall_tracepoints"):
        assert caps[name]["ok"] is True, caps[name]
        assert caps[name]["required"] is True
    lsms = active_lsms()  # attached programs run only where bpf is an active LSM
    runs = lsm_really_works(tmp_path) and (lsms is None or "bpf" in lsms)
    assert caps["prog:lsm"]["ok"] is runs
    detail = caps["kernel"]["detail"]
    assert isinstance(detail, str) and detail.startswith(f"Linux {os.uname().release}")
    n = len(syscall_tracepoints())
    assert f"{n} sys_enter_* tracepoints" in caps["syscall_tracepoints"]["detail"]  # type: ignore[operator]
    if "init_module" not in syscall_tracepoints() and not Path("/proc/modules").exists():
        assert "CONFIG_MODULES" in caps["syscall_tracepoints"]["detail"]  # type: ignore[operator]
    # doctor checks every syscall of the event table: it names exactly those this kernel lacks
    absent = [s for s in WATCHED_SYSCALLS if s not in set(syscall_tracepoints())
              and s not in ("init_module", "finit_module")]
    detail = str(caps["syscall_tracepoints"]["detail"])
    if absent:
        assert f"missing: {', '.join(absent)}" in detail
    else:
        assert "missing:" not in detail


def test_doctor_lsm_line_names_what_it_found() -> None:
    """Tracepoints work on every kernel sysward runs on; the LSM line either says the programs
    load, attach and run, or why not: refused (EPERM on the project's VMs, DESIGN.md platform
    facts) or never run (BPF LSM built but not in the active LSM list, as on Debian 11)."""
    caps = doctor_json()
    assert caps["prog:tracepoint"]["ok"] is True
    lsm = caps["prog:lsm"]
    lsms = active_lsms()  # None where securityfs is not mounted (the project's VMs)
    detail = str(lsm["detail"])
    if lsm["ok"]:
        assert "loads and attaches" in detail and (lsms is None or "bpf" in lsms)
    elif "bpf is not in the active LSM list" in detail:
        assert lsms is not None and "bpf" not in lsms and "lsm=" in detail
    else:  # refused: the errno, and what it costs
        assert "(E" in detail and "deny rules on exec, open and ptrace" in detail
    if not lsm["ok"]:
        assert "deny rules on exec, open and ptrace are refused at load" in detail


def test_doctor_text_has_one_line_per_capability() -> None:
    result = CliRunner().invoke(doctor, [])
    lines = result.output.strip().splitlines()
    caps = doctor_json()
    assert len(lines) == len(caps) + 1  # + the verdict
    for line, (name, cap) in zip(lines, caps.items(), strict=False):
        status, shown = line.split()[:2]
        assert (status, shown) == ("ok" if cap["ok"] else "missing", name)
    missing = [name for name, cap in caps.items() if cap["required"] and not cap["ok"]]
    if missing:  # a kernel below the minimum (test_kernel_minimum.py)
        assert result.exit_code == 1 and lines[-1].startswith("sysward cannot run here: missing")
        assert all(name in lines[-1] for name in missing)
    else:
        assert result.exit_code == 0 and lines[-1] == "sysward can run on this host."


def test_unprivileged_user_gets_one_sentence(tmp_path: Path) -> None:
    """As nobody: require_privileges refuses in one sentence and doctor exits 1."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop to nobody, never return into pytest
        code = 3
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            from sysward.errors import PrivilegeError
            from sysward.kernel import require_privileges

            try:
                require_privileges()
                msg = "no error"
            except PrivilegeError as exc:
                msg = exc.message
            result = CliRunner().invoke(doctor, ["--json"])
            os.write(w, json.dumps({"msg": msg, "exit": result.exit_code,
                                    "exc": repr(result.exc_info),
                                    "out": result.output}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    got = json.loads(data)
    assert "CAP_BPF" in got["msg"] and "\n" not in got["msg"]
    assert got["exit"] == 1
    assert got["out"], got
    caps = {c["name"]: c for c in json.loads(got["out"])["capabilities"]}
    assert caps["root"]["ok"] is False and "sudo" in caps["root"]["detail"]
