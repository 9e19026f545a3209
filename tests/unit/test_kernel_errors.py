"""Loader error handling that needs no privileges: errno texts, libbpf log capture, exports."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import sysward.kernel as kernel
from sysward.errors import KernelError, PrivilegeError, SyswardError
from sysward.kernel import BpfError, BpfObject
from sysward.kernel import libbpf as lb
from sysward.kernel.probe import Capability, _insns, _syscall_capability

SAMPLE_LOG = """libbpf: prog 'handle_openat': BPF program load failed: Permission denied
libbpf: prog 'handle_openat': -- BEGIN PROG LOAD LOG --
arg#0 reference type('UNKNOWN ') size cannot be determined: -22
0: R1=ctx() R10=fp0
; int handle_openat(void *ctx) @ x.bpf.c:10
6: (85) call bpf_map_lookup_elem#1    ; R0=map_value_or_null(id=1)
7: (79) r1 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 7 insns (limit 1000000) max_states_per_insn 0 total_states 0
-- END PROG LOAD LOG --
libbpf: prog 'handle_openat': failed to load: -13
libbpf: failed to load object 'x.bpf.o'""".splitlines()


def test_errno_text_names_the_errno() -> None:
    assert lb.errno_text(errno.EPERM) == "Operation not permitted (EPERM)"
    assert lb.errno_text(-errno.EACCES) == "Permission denied (EACCES)"  # libbpf's -errno
    assert lb.errno_text(4242) == f"{os.strerror(4242)} (errno 4242)"


def test_bpf_error_is_a_user_error_with_errno() -> None:
    exc = BpfError("loading program 'x' failed", errno=errno.EPERM)
    assert isinstance(exc, KernelError) and isinstance(exc, SyswardError)
    assert exc.errno == errno.EPERM and str(exc) == "loading program 'x' failed"
    assert issubclass(PrivilegeError, KernelError)


def test_verifier_log_parsing() -> None:
    assert lb.failed_program(SAMPLE_LOG) == "handle_openat"
    lines = lb.verifier_lines(SAMPLE_LOG, "handle_openat")
    assert lines[-1] == "R0 invalid mem access 'map_value_or_null'"
    assert not any(line.startswith("processed") for line in lines)
    assert len(lines) <= 6
    assert lb.failed_program(["libbpf: map 'events': failed to create"]) is None
    assert lb.verifier_lines(SAMPLE_LOG, "other") == []


def test_libbpf_log_is_captured_not_printed(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    not_elf = tmp_path / "garbage.bpf.o"
    not_elf.write_bytes(b"this is not an ELF file\n" * 10)
    with pytest.raises(BpfError) as ei:
        BpfObject.open(not_elf)
    assert ei.value.errno != 0
    msg = str(ei.value)
    assert msg.startswith(f"opening BPF object '{not_elf}' failed: ")
    assert "libbpf:" in msg  # libbpf's own explanation, from the captured log
    assert any("elf" in line.lower() for line in lb.log_tail())
    out, err = capfd.readouterr()
    assert "libbpf" not in err and "libbpf" not in out


def test_long_messages_keep_head_and_tail() -> None:
    lb.clear_log()
    lb.record("\n".join(f"line {i}" for i in range(1000)))
    kept = lb.log_tail(1000)
    assert kept[:3] == ["line 0", "line 1", "line 2"]
    assert kept[3].startswith("... (") and kept[-1] == "line 999"
    assert len(kept) < 100


def test_missing_object_file(tmp_path: Path) -> None:
    with pytest.raises(BpfError) as ei:
        BpfObject.open(tmp_path / "absent.bpf.o")
    assert ei.value.errno == errno.ENOENT
    assert "absent.bpf.o" in str(ei.value) and "make build" in str(ei.value)


def test_exports_are_complete() -> None:
    for name in ("BpfError", "BpfObject", "BpfProgram", "BpfMap", "Link", "RingBufferReader",
                 "ensure_tracefs", "require_privileges", "possible_cpus"):
        assert name in kernel.__all__
        assert getattr(kernel, name) is not None
    public = {n for n in vars(kernel) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(kernel.__all__)


def test_probe_program_is_two_instructions() -> None:
    code = _insns(1)
    assert len(code) == 16
    assert struct.unpack("<BBhi", code[:8]) == (0xB7, 0, 0, 1)  # r0 = 1
    assert code[8] == 0x95  # exit


def test_syscall_report_names_missing_module_syscalls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "events" / "syscalls"
    for name in ("execve", "openat", "connect"):
        (base / f"sys_enter_{name}").mkdir(parents=True)
        (base / f"sys_exit_{name}").mkdir(parents=True)
    import sysward.kernel.probe as probe

    monkeypatch.setattr(probe, "syscall_tracepoints",
                        lambda: kernel.tracefs.syscall_tracepoints(tmp_path))
    cap = _syscall_capability()
    assert isinstance(cap, Capability) and cap.ok
    assert cap.detail.startswith("3 sys_enter_* tracepoints")
    assert "init_module/finit_module" in cap.detail
    missing = cap.detail.split("missing: ")[1].split(" (")[0].split(", ")
    assert "ptrace" in missing and "execveat" in missing
    assert not {"execve", "openat", "connect", "init_module"} & set(missing)


def test_cli_error_is_one_line(tmp_path: Path) -> None:
    """A BpfError raised in a subcommand reaches the user as one line, without a traceback."""
    (tmp_path / "boom_cmd.py").write_text(
        "import click\n"
        "from sysward.kernel import BpfError\n"
        "@click.command()\n"
        "def boom() -> None:\n"
        "    raise BpfError(\"loading program 'p' failed: Operation not permitted (EPERM)\", 1)\n"
    )
    script = ("import sys; from sysward import cli; "
              "cli._COMMANDS['boom'] = ('boom_cmd', 'boom', 'test'); sys.exit(cli.main(['boom']))")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr == (
        "sysward: error: loading program 'p' failed: Operation not permitted (EPERM)\n"
    )
