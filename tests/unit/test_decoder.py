"""The decoder from wire bytes: records are built here with the layouts of bpf/abi.h."""

from __future__ import annotations

import logging
import socket

import pytest

from sysward.errors import ConfigError
from sysward.events.decoder import Decoder, dentry_path, join_path, string_list
from sysward.events.types import (
    BY_NAME,
    EXEC,
    F_TRUNCATED,
    GROUPS,
    HEADER,
    INTS,
    SOCK,
    STRS,
    resolve_types,
)

BOOT = 1_700_000_000_000_000_000


def header(type_name: str, size: int, res: int = 0, flags: int = 0, comm: bytes = b"bash") -> bytes:
    return HEADER.struct.pack(
        5_000, 77, 1_000, res, size, BY_NAME[type_name].id, 1, 100, 101, 1, 1000, 1001, 1002,
        1003, 4294967295, 4026531836, 4026531840, 34816, flags, comm,
    )


def record(type_name: str, payload: bytes, tail: bytes = b"", **kw: object) -> bytes:
    size = HEADER.size + len(payload) + len(tail)
    return header(type_name, size, **kw) + payload + tail  # type: ignore[arg-type]


def test_header_fields_and_epoch_conversion() -> None:
    dec = Decoder(boot_offset=BOOT)
    ev = dec.decode(record("setuid", INTS.struct.pack(0, 0, 0, 0), res=-1))
    assert ev is not None
    assert (ev.ts, ev.start_time) == (BOOT + 5_000, BOOT + 1_000)
    assert (ev.pid, ev.tid, ev.ppid, ev.cpu) == (100, 101, 1, 1)
    assert (ev.uid, ev.gid, ev.euid, ev.egid, ev.loginuid) == (1000, 1001, 1002, 1003,
                                                                4294967295)
    assert (ev.cgroup_id, ev.pidns, ev.mntns, ev.tty) == (77, 4026531836, 4026531840, 34816)
    assert ev.comm == "bash" and ev.type == "setuid" and ev.res == -1
    assert ev.args == {"uid": 0} and ev.num == 1


def test_ints_names_per_type() -> None:
    dec = Decoder(boot_offset=0)
    ev = dec.decode(record("tgkill", INTS.struct.pack(10, 11, 9, 0)))
    assert ev is not None and ev.args == {"pid": 10, "tid": 11, "sig": 9}
    ev = dec.decode(record("procexit", INTS.struct.pack(3, 0, 0, 0)))
    assert ev is not None and ev.args == {"status": 3, "signal": 0, "core": False}


def test_open_relative_path_is_joined_with_its_dir() -> None:
    name = b"../etc/./passwd\0"
    dir_ = b"tmp\0work\0"  # leaf first: /work/tmp
    payload = STRS.struct.pack(-100, 0o2, 0o644, len(name), len(dir_), 0, 0, 0, 0, 0)
    ev = Decoder(boot_offset=0).decode(record("openat", payload, name + dir_, res=3))
    assert ev is not None
    assert ev.args == {"name": "/work/etc/passwd", "dirfd": -100, "flags": 2, "mode": 0o644}
    assert ev.res == 3


def test_rename_two_paths_and_truncation_flag() -> None:
    old, new, ndir = b"/a/b\0", b"c\0", b"x\0"
    payload = STRS.struct.pack(1, 0, 0, len(old), 0, len(new), len(ndir), 0, 0, 0)
    ev = Decoder(boot_offset=0).decode(
        record("renameat2", payload, old + new + ndir, flags=F_TRUNCATED))
    assert ev is not None
    assert ev.args == {"oldpath": "/a/b", "newpath": "/x/c", "flags": 1, "truncated": True}


def test_connect_ipv4_and_ipv6() -> None:
    dec = Decoder(boot_offset=0)
    a4 = socket.inet_pton(socket.AF_INET, "127.0.0.1").ljust(16, b"\0")
    p = SOCK.struct.pack(3, 0, 0, a4, a4, 2, 8080, 40000, 1, 6, 0, 0, 0, b"", 0)
    ev = dec.decode(record("connect", p, res=0))
    assert ev is not None
    assert ev.args == {"fd": 3, "family": 2, "addr": "127.0.0.1", "port": 8080,
                       "saddr": "127.0.0.1", "sport": 40000, "sotype": 1, "proto": 6}
    a6 = socket.inet_pton(socket.AF_INET6, "::1")
    p = SOCK.struct.pack(4, 0, 0, a6, a6, 10, 443, 1, 1, 6, 0, 0, 0, b"", 0)
    ev = dec.decode(record("connect", p, res=-111))
    assert ev is not None and ev.args["addr"] == "::1" and ev.res == -111


def test_dup2_of_socket_and_unix_bind() -> None:
    dec = Decoder(boot_offset=0)
    a4 = socket.inet_pton(socket.AF_INET, "127.0.0.1").ljust(16, b"\0")
    p = SOCK.struct.pack(5, 1, 0, a4, a4, 2, 4444, 5555, 1, 6, ord("4"), 0, 0, b"", 0)
    ev = dec.decode(record("dup2", p, res=1))
    assert ev is not None
    assert ev.args["fd_type"] == "4" and ev.args["oldfd"] == 5 and ev.args["newfd"] == 1
    assert ev.args["addr"] == "127.0.0.1" and ev.args["port"] == 4444
    p = SOCK.struct.pack(3, 0, 0, b"", b"", 1, 0, 0, 1, 0, 0, 9, 0, b"/tmp/sock", 0)
    ev = dec.decode(record("bind", p))
    assert ev is not None and ev.args == {"fd": 3, "family": 1, "addr": "/tmp/sock", "port": 0}


# fd_ino[3], fd_rdev[3], fd_type, sock_fd, sock_addr, sock_saddr, family, port, sport, pad,
# writer_comm: fds 0..2 closed, no socket, not written
_NO_STDIO = (0, 0, 0, 0, 0, 0, b"", 255, b"", b"", 0, 0, 0, 0, b"")


def test_exec_stdio_socket_and_writer() -> None:
    dec = Decoder(boot_offset=0)
    exe_dir, argv, cwd = b"sh\0bin\0", b"sh\0-i\0", b"tmp\0"
    peer = socket.inet_pton(socket.AF_INET, "10.1.2.3").ljust(16, b"\0")
    local = socket.inet_pton(socket.AF_INET, "10.9.9.9").ljust(16, b"\0")
    # fd 0 and 1 the same TCP socket, fd 2 a pty; the exe was written by "cp"
    p = EXEC.struct.pack(0, 0, 0, -100, 0, 16, 0, len(exe_dir), len(argv), 0, len(cwd), 0, 0,
                         77, 77, 5, 0, 0, (136 << 8) | 3, b"44c", 0, peer, local, 2, 4444,
                         40000, 0, b"cp")
    ev = dec.decode(record("execve", p, exe_dir + argv + cwd))
    assert ev is not None
    sock = {"typechar": "4", "ino": 77, "family": 2, "addr": "10.1.2.3", "port": 4444,
            "saddr": "10.9.9.9", "sport": 40000}
    assert ev.args["stdio"] == [sock, sock, {"typechar": "c", "ino": 5, "rdev": 34819}]
    assert ev.args["exe_writer"] == "cp"
    p = EXEC.struct.pack(0, 0, 0, -100, 0, 0, 0, len(exe_dir), len(argv), 0, len(cwd), 0, 0,
                         9, 0, 0, 0, 0, 0, b"p\0\0", 255, b"", b"", 0, 0, 0, 0, b"")
    ev = dec.decode(record("execve", p, exe_dir + argv + cwd))
    assert ev is not None
    assert ev.args["stdio"] == [{"typechar": "p", "ino": 9}, None, None]
    assert "exe_writer" not in ev.args


def test_exec_success_and_failure() -> None:
    dec = Decoder(boot_offset=0)
    exe_dir, argv, env, cwd = b"ls\0bin\0usr\0", b"ls\0-l\0/tmp\0", b"A=1\0", b"tmp\0"
    p = EXEC.struct.pack(1, 2, 3, -100, 0, 0, 0, len(exe_dir), len(argv), len(env), len(cwd),
                         0, 0, *_NO_STDIO)
    ev = dec.decode(record("execve", p, exe_dir + argv + env + cwd))
    assert ev is not None
    assert ev.args["filename"] == "/usr/bin/ls"
    assert ev.args["argv"] == ["ls", "-l", "/tmp"] and ev.args["env"] == ["A=1"]
    assert ev.args["cwd"] == "/tmp" and ev.args["cap_effective"] == 1
    assert "dirfd" not in ev.args
    name, argv = b"./nope\0", b"./nope\0x\0"
    p = EXEC.struct.pack(0, 0, 0, 7, 0x1000, 0, len(name), len(cwd), len(argv), 0, len(cwd),
                         1, 0, *_NO_STDIO)
    ev = dec.decode(record("execveat", p, name + cwd + argv + cwd, res=-2))
    assert ev is not None
    assert ev.args["filename"] == "/tmp/nope" and ev.args["argv"] == ["./nope", "x"]
    assert ev.args["argv_truncated"] is True and "env" not in ev.args
    assert ev.args["dirfd"] == 7 and ev.args["flags"] == 0x1000 and ev.res == -2


def test_malformed_records_are_counted_not_raised() -> None:
    dec = Decoder(boot_offset=0)
    good = record("setuid", INTS.struct.pack(0, 0, 0, 0))
    bad_type = header("setuid", 0)[:36] + b"\xff\x00" + header("setuid", 0)[38:]
    out = dec.decode_batch([good, b"short", bad_type + INTS.struct.pack(0, 0, 0, 0), good[:110]])
    assert len(out) == 1 and dec.errors == 3
    assert [e.num for e in dec.decode_batch([good, good])] == [2, 3]


def test_decode_errors_are_counted_per_type_and_explained(
        caplog: pytest.LogCaptureFixture) -> None:
    dec = Decoder(boot_offset=0)
    good = record("setuid", INTS.struct.pack(0, 0, 0, 0))
    bad_type = header("setuid", 0)[:36] + b"\xff\x00" + header("setuid", 0)[38:]
    with caplog.at_level(logging.WARNING, logger="sysward.events.decoder"):
        dec.decode_batch([good[:110], good[:120], b"short", bad_type])
    assert dec.errors == 4
    assert dec.errors_by_type == {"setuid": 2, "unknown": 2}
    assert dec.last_error["setuid"] == "ValueError: short record"
    # the first failure of each type is logged with its traceback, the others only counted
    logged = [r for r in caplog.records if "cannot decode" in r.getMessage()]
    assert [r.getMessage().split()[3] for r in logged] == ["setuid", "unknown"]
    assert all(r.exc_info for r in logged)


def test_helpers() -> None:
    assert dentry_path(b"") == "" and dentry_path(b"passwd\0etc\0") == "/etc/passwd"
    assert join_path(b"/abs\0", b"x\0") == "/abs"
    assert join_path(b"", b"x\0") == "/x"
    assert string_list(b"a\0b") == ["a", "b"] and string_list(b"") == []


def test_resolve_types_groups_and_errors() -> None:
    names = [t.name for t in resolve_types("exec,open,connect")]
    assert names == ["execve", "execveat", "open", "openat", "openat2", "creat", "connect"]
    assert len(resolve_types("all")) == len(GROUPS["all"])
    with pytest.raises(ConfigError, match="unknown event type.*nope.*valid types"):
        resolve_types("exec,nope")
