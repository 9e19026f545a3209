"""Falco's symbolic renderings of raw syscall values, and docs/fields.md staying current."""

from __future__ import annotations

import os

import pytest

from sysward.rules import render as r
from sysward.rules.fields_doc import DOC_PATH, render_markdown


@pytest.mark.parametrize(("flags", "text"), [
    (os.O_RDONLY, "O_RDONLY"),
    (os.O_RDONLY | os.O_CLOEXEC, "O_RDONLY|O_CLOEXEC"),
    (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "O_TRUNC|O_CREAT|O_WRONLY"),
    (os.O_RDWR | os.O_APPEND | os.O_NONBLOCK, "O_NONBLOCK|O_APPEND|O_RDWR"),
    (os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, "O_DIRECTORY|O_RDONLY|O_CLOEXEC"),
])
def test_open_flags(flags: int, text: str) -> None:
    assert r.render_open_flags(flags) == text


def test_bit_sets() -> None:
    assert r.render_file_mode(0o644) == "S_IROTH|S_IRGRP|S_IWUSR|S_IRUSR"
    assert r.render_file_mode(0o6000) == "S_ISGID|S_ISUID"
    assert r.render_file_mode(0) == "0"
    assert r.render_clone_flags(0x10000000 | 0x20000000 | 17) == "CLONE_NEWPID|CLONE_NEWUSER"
    assert r.render_clone_flags(17) == "0"  # only the exit signal
    assert r.render_ns_flags(0x80) == "CLONE_NEWTIME"
    assert r.render_exe_flags(0) == "0" and r.render_exe_flags(1) == "EXE_FROM_MEMFD"
    assert r.render_mount_flags(4096 | 16384) == "MS_BIND|MS_REC"
    assert r.render_memfd_flags(3) == "MFD_CLOEXEC|MFD_ALLOW_SEALING"
    assert r.render_bits(0x8000_0000_0000, (("A", 1),)) == str(0x8000_0000_0000)


def test_enumerations() -> None:
    assert r.render_ptrace_request(0) == "PTRACE_TRACEME"
    assert r.render_ptrace_request(0x4206) == "PTRACE_SEIZE"
    assert r.render_ptrace_request(999) == "999"
    assert r.render_socket_family(17) == "AF_PACKET" and r.render_socket_family(10) == "AF_INET6"
    assert r.render_socket_type(3) == "SOCK_RAW"
    assert r.render_socket_type(1 | 0o4000) == "SOCK_STREAM|SOCK_NONBLOCK"
    assert r.render_signal(9) == "SIGKILL" and r.render_signal(15) == "SIGTERM"
    assert r.render_signal(35).startswith("SIGRTMIN+")
    assert r.render_bpf_cmd(5) == "BPF_PROG_LOAD" and r.render_bpf_cmd(0) == "BPF_MAP_CREATE"


def test_capabilities() -> None:
    assert r.render_caps(0) == ""
    assert r.render_caps((1 << 21) | (1 << 16) | 1) == "CAP_CHOWN CAP_SYS_MODULE CAP_SYS_ADMIN"
    assert r.render_caps(r.ALL_CAPS_MASK).split()[-1] == "CAP_CHECKPOINT_RESTORE"
    assert len(r.render_caps(r.ALL_CAPS_MASK).split()) == 41


def test_errno_names() -> None:
    assert r.render_res(0) == "SUCCESS" and r.render_res(7) == "SUCCESS"
    assert r.render_res(-2) == "ENOENT" and r.render_res(-13) == "EACCES"
    assert r.render_res(-115) == "EINPROGRESS" and r.render_res(-11) == "EAGAIN"
    assert r.render_res(-35) == "EDEADLK" and r.render_res(-95) == "EOPNOTSUPP"
    assert r.render_res(-99999) == "-99999"


def test_docs_fields_md_is_current() -> None:
    """docs/fields.md is generated; regenerate with `python -m sysward.rules.fields_doc`."""
    assert DOC_PATH.exists(), f"{DOC_PATH} missing: run 'python -m sysward.rules.fields_doc'"
    assert DOC_PATH.read_text() == render_markdown(), (
        "docs/fields.md is stale: run 'python -m sysward.rules.fields_doc'")


def test_docs_list_every_field() -> None:
    from sysward.rules.fields import all_fields

    text = render_markdown()
    for f in all_fields():
        assert f"| `{f.name}` |" in text
