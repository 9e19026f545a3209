"""The field registry: names, arguments, types, and each extractor's Falco semantics."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest

from sysward.events.model import NO_LOGINUID, Event, Process
from sysward.rules.fields import (
    BoundField,
    FieldError,
    FieldType,
    all_fields,
    is_field,
    resolve,
)

SHARED = Path(__file__).parents[2] / ".." / "shared" / "falco-rules"
T0 = 1_700_000_000_000_000_000


def val(name: str, ev: Event, arg: str | None = None) -> Any:
    return resolve(name, arg).extract(ev)


def chain() -> Process:
    init = Process(pid=1, comm="systemd", argv=["/sbin/init"], exepath="/usr/lib/systemd/systemd",
                   sid=1)
    sshd = Process(pid=900, ppid=1, comm="sshd", argv=["sshd: alice"], exepath="/usr/sbin/sshd",
                   sid=900, parent=init, start_time=T0 - 100)
    bash = Process(pid=1000, ppid=900, comm="bash", argv=["-bash"], exepath="/usr/bin/bash",
                   sid=1000, pgid=1000, parent=sshd)
    return Process(pid=1001, ppid=1000, comm="python3", argv=["python3", "x.py", "--fast"],
                   exepath="/usr/bin/python3.11", cwd="/home/alice", sid=1000, pgid=1001,
                   env=["HOME=/home/alice", "LANG=C"], user="alice", group="alice",
                   loginname="alice", start_time=T0 - 7_000_000_000, parent=bash,
                   cap_effective=(1 << 21) | 1)


def ev(etype: str = "openat", args: dict[str, Any] | None = None, proc: Process | None = None,
       **hdr: Any) -> Event:
    e = Event(ts=T0, type=etype, args=args or {}, **hdr)
    e.proc = proc
    return e


# --- names and arguments --------------------------------------------------------------------


@pytest.mark.parametrize(("written", "name", "arg", "multi"), [
    ("proc.name", "proc.name", None, False),
    ("proc.aname[2]", "proc.aname[2]", 2, False),
    ("proc.aname", "proc.aname", None, True),
    ("evt.arg.flags", "evt.arg.flags", "flags", False),
    ("evt.arg[1]", "evt.arg[1]", 1, False),
    ("proc.env[HOME]", "proc.env[HOME]", "HOME", False),
    ("fd.ip", "fd.ip", None, True),
    ("container.mount.dest[/var/run/docker.sock]", "container.mount.dest[/var/run/docker.sock]",
     "/var/run/docker.sock", False),
])
def test_resolve_forms(written: str, name: str, arg: Any, multi: bool) -> None:
    bound = resolve(written)
    assert isinstance(bound, BoundField)
    assert (bound.name, bound.arg, bound.multi) == (name, arg, multi)


def test_resolve_with_separate_argument() -> None:
    assert resolve("proc.aname", "3").arg == 3
    assert resolve("evt.arg", "flags").arg == "flags"
    assert resolve("evt.arg", "2").arg == 2


@pytest.mark.parametrize(("written", "arg", "message"), [
    ("proc.nam", None, "did you mean 'proc.name'"),
    ("nosuch.field", None, "unknown field"),
    ("proc.name", "2", "takes no argument"),
    ("proc.aname[x]", None, "needs a number"),
    ("evt.arg", None, "needs an argument"),
    ("k8s.pod.label", None, "needs an argument"),
    ("proc.aname[2]", "3", "two arguments"),
])
def test_resolve_errors(written: str, arg: str | None, message: str) -> None:
    with pytest.raises(FieldError, match=message) as info:
        resolve(written, arg)
    assert isinstance(info.value, ValueError)


def test_is_field_tells_fields_from_macros() -> None:
    assert is_field("proc.name") and is_field("evt.arg.flags") and is_field("proc.aname[2]")
    assert is_field("proc.aname[x]")  # a field written badly is still a field
    assert not is_field("spawned_process") and not is_field("open_write")
    assert not is_field("user_known.something")


def test_every_field_of_the_falco_rule_files_resolves() -> None:
    files = sorted(SHARED.glob("FIELDS*.txt"))
    if not files:
        pytest.skip(f"{SHARED} not present")
    seen = 0
    for path in files:
        for line in path.read_text().splitlines():
            if not line or line.startswith("#") or line.startswith("field\t"):
                continue
            cols = line.split("\t")
            args: list[str | None] = ([a.strip("[]") for a in cols[6].split(",") if a]
                                      if len(cols) > 6 else [])
            for arg in args or [None]:
                resolve(cols[0], arg)
                seen += 1
    assert seen > 100


def test_registry_is_sorted_and_described() -> None:
    fields = all_fields()
    assert len(fields) == len({f.name for f in fields}) > 100
    for f in fields:
        assert f.desc and f.availability, f.name
        assert isinstance(f.type, FieldType)


# --- evt --------------------------------------------------------------------------------------


def test_evt_result_fields() -> None:
    ok, bad = ev(res=3), ev(res=-2)
    assert val("evt.res", ok) == "SUCCESS" and val("evt.res", bad) == "ENOENT"
    assert val("evt.rawres", bad) == -2 and val("evt.failed", bad) is True
    assert val("evt.res", ev("connect", res=-115)) == "EINPROGRESS"
    assert val("evt.dir", ok) == "<" and val("evt.type", ok) == "openat"


@pytest.mark.parametrize(("etype", "flags", "mode", "read", "write", "exec_", "create"), [
    ("openat", os.O_RDONLY, 0, True, False, False, False),
    ("openat", os.O_WRONLY | os.O_CREAT, 0o644, False, True, False, True),
    ("open", os.O_RDWR | os.O_CREAT, 0o755, True, True, True, True),
    ("openat2", os.O_WRONLY, 0o755, False, True, False, False),  # no O_CREAT: not an exec
    ("creat", 0, 0o700, False, True, True, True),
    ("execve", os.O_RDONLY, 0, False, False, False, False),  # not an open at all
])
def test_is_open_classification(etype: str, flags: int, mode: int, read: bool, write: bool,
                                exec_: bool, create: bool) -> None:
    e = ev(etype, {"name": "/f", "flags": flags, "mode": mode}, res=3)
    assert val("evt.is_open_read", e) is read
    assert val("evt.is_open_write", e) is write
    assert val("evt.is_open_exec", e) is exec_
    assert val("evt.is_open_create", e) is create


def test_evt_arg_renders_symbolically() -> None:
    e = ev("openat", {"name": "/var/log/syslog", "flags": os.O_WRONLY | os.O_TRUNC,
                      "mode": 0o4755, "dirfd": -100}, res=5)
    assert val("evt.arg.flags", e) == "O_TRUNC|O_WRONLY"
    assert val("evt.arg.mode", e) == \
        "S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID"
    assert val("evt.arg.name", e) == "/var/log/syslog"
    assert val("evt.arg.fd", e) == "5"  # Falco's fd parameter of an open is its result
    assert val("evt.arg[0]", e) == "5" and val("evt.arg[1]", e) == "/var/log/syslog"
    assert val("evt.arg[9]", e) is None and val("evt.arg.nosuch", e) is None
    assert val("evt.rawarg.flags", e) == os.O_WRONLY | os.O_TRUNC
    assert resolve("evt.rawarg.flags").type is FieldType.INT
    assert resolve("evt.rawarg.name").type is FieldType.STRING
    assert val("evt.arg.request", ev("ptrace", {"request": 16, "pid": 3})) == "PTRACE_ATTACH"
    assert val("evt.arg.domain", ev("socket", {"domain": 17, "type": 3})) == "AF_PACKET"
    assert val("evt.arg.type", ev("socket", {"domain": 2, "type": 0o2000001})) == \
        "SOCK_STREAM|SOCK_CLOEXEC"
    assert val("evt.arg.uid", ev("setuid", {"uid": 0})) == "root"
    assert val("evt.arg.flags", ev("unshare", {"flags": 0x10000000})) == "CLONE_NEWUSER"
    assert val("evt.arg.cmd", ev("bpf", {"cmd": 5})) == "BPF_PROG_LOAD"
    assert val("evt.arg.sig", ev("kill", {"pid": 1, "sig": 9})) == "SIGKILL"


def test_evt_arg_aliases_for_execve() -> None:
    e = ev("execve", {"filename": "/usr/bin/ls", "argv": ["ls", "-l", "/"], "exe_flags": 3})
    assert val("evt.arg.flags", e) == "EXE_UPPER_LAYER|EXE_FROM_MEMFD"
    assert val("evt.arg.exe", e) == "ls" and val("evt.arg.args", e) == "-l /"
    assert val("evt.arg.path", ev("unlink", {"name": "/tmp/x"})) == "/tmp/x"


def test_evt_args_lists_raw_and_symbolic() -> None:
    text = val("evt.args", ev("socket", {"domain": 17, "type": 3, "proto": 768}, res=4))
    assert text == "res=4 domain=17(AF_PACKET) type=3(SOCK_RAW) proto=768"


# --- proc / thread -----------------------------------------------------------------------------


def test_proc_basics_follow_falco() -> None:
    p = chain()
    e = ev("openat", proc=p, pid=1001, ppid=1000, comm="python3", tty=34816,
           start_time=p.start_time)
    assert val("proc.name", e) == "python3"
    assert val("proc.exe", e) == "python3" and val("proc.exepath", e) == "/usr/bin/python3.11"
    assert val("proc.args", e) == "x.py --fast"
    assert val("proc.cmdline", e) == "python3 x.py --fast"  # name (comm) + args
    assert val("proc.cwd", e) == "/home/alice/"  # always ends with '/'
    assert val("proc.env", e) == "HOME=/home/alice LANG=C"
    assert val("proc.env[LANG]", e) == "C" and val("proc.env[NOPE]", e) is None
    assert val("proc.tty", e) == 34816 and val("proc.pid", e) == 1001
    assert val("proc.duration", e) == 7_000_000_000
    assert val("proc.vpid", e) == 1001  # host process
    assert val("proc.sid", e) == 1000 and val("proc.sname", e) == "bash"
    assert val("proc.is_vpgid_leader", e) is True and val("proc.is_sid_leader", e) is False


def test_proc_cmdline_uses_comm_not_argv0() -> None:
    p = Process(pid=5, comm="java", argv=["/opt/jdk/bin/java", "-jar", "app.jar"])
    e = ev("execve", proc=p, comm="java")
    assert val("proc.cmdline", e) == "java -jar app.jar"
    assert val("proc.exeline", e) == "/opt/jdk/bin/java -jar app.jar"
    assert val("proc.cmdnargs", e) == 2


def test_ancestors() -> None:
    e = ev(proc=chain(), comm="python3")
    assert val("proc.pname", e) == "bash" and val("proc.pcmdline", e) == "bash"
    assert val("proc.pexepath", e) == "/usr/bin/bash" and val("proc.pexe", e) == "-bash"
    assert val("proc.aname[0]", e) == "python3"
    assert [val("proc.aname", e, str(i)) for i in (1, 2, 3, 4)] == \
        ["bash", "sshd", "systemd", None]
    assert val("proc.apid[2]", e) == 900 and val("proc.aexepath[2]", e) == "/usr/sbin/sshd"
    assert val("proc.aname", e) == ("bash", "sshd", "systemd")  # any-of: ancestors only
    assert val("proc.apid", e) == (1000, 900, 1)


def test_missing_process_context_is_missing_not_wrong() -> None:
    e = ev("openat", {"name": "/x", "flags": 0}, comm="cat", pid=7, ppid=6)
    assert val("proc.name", e) == "cat" and val("proc.pid", e) == 7 and val("proc.ppid", e) == 6
    for name in ("proc.pname", "proc.exepath", "proc.cwd", "proc.sname", "proc.aname[2]",
                 "proc.pcmdline", "thread.cap_effective"):
        assert val(name, e) is None, name
    assert val("proc.aname", e) == ()


def test_exec_arguments_fill_in_for_enrichment() -> None:
    e = ev("execve", {"filename": "/dev/shm/x", "argv": ["./x", "-q"], "cwd": "/dev/shm",
                      "exe_flags": 1, "cap_effective": 1 << 16}, comm="x")
    assert val("proc.exepath", e) == "/dev/shm/x" and val("proc.exe", e) == "./x"
    assert val("proc.cwd", e) == "/dev/shm/" and val("proc.cmdline", e) == "x -q"
    assert val("proc.is_exe_from_memfd", e) is True
    assert val("proc.is_exe_upper_layer", e) is False
    assert val("thread.cap_effective", e) == "CAP_SYS_MODULE"


def test_thread_caps_from_process() -> None:
    e = ev(proc=chain())
    assert val("thread.cap_effective", e) == "CAP_CHOWN CAP_SYS_ADMIN"
    assert val("thread.cap_permitted", e) == ""


# --- user / group / container -----------------------------------------------------------


def test_user_fields() -> None:
    e = ev(proc=chain(), euid=1000, egid=1000, loginuid=1000)
    assert val("user.uid", e) == 1000 and val("user.name", e) == "alice"
    assert val("user.loginuid", e) == 1000 and val("user.loginname", e) == "alice"
    assert val("group.gid", e) == 1000 and val("group.name", e) == "alice"
    never = ev(euid=0, loginuid=NO_LOGINUID)
    assert val("user.loginuid", never) == -1 and val("user.loginname", never) is None
    assert val("user.name", never) == "root"  # host process: this host's passwd


def test_container_fields() -> None:
    host = ev(proc=chain())
    assert val("container.id", host) == "host" and val("container.name", host) == "host"
    assert val("container.image.repository", host) is None
    assert val("container.privileged", host) is None
    assert val("container.id", ev()) == "host"
    p = Process(pid=9, comm="sh", container_id="3f2a9c1b7d4e", container_name="web",
                container_image="registry.local:5000/team/app:1.2@sha256:abc",
                cap_effective=(1 << 41) - 1)
    c = ev(proc=p)
    assert val("container.id", c) == "3f2a9c1b7d4e" and val("container.name", c) == "web"
    assert val("container.image.repository", c) == "registry.local:5000/team/app"
    assert val("container.image.tag", c) == "1.2"
    assert val("container.image.digest", c) == "sha256:abc"
    assert val("container.privileged", c) is True
    p.cap_effective = 0xA80425FB
    assert val("container.privileged", c) is False
    assert val("proc.vpid", c) is None  # the namespace view is unknown
    for name in ("k8s.ns.name", "k8s.pod.name", "container.mount.dest[/etc]", "container.mounts"):
        assert val(name, c) is None


# --- fd -----------------------------------------------------------------------------------


def test_fd_of_an_open() -> None:
    e = ev("openat", {"name": "/var/www/../../etc//shadow", "flags": 0}, res=4)
    assert val("fd.name", e) == "/etc/shadow"
    assert val("fd.nameraw", e) == "/var/www/../../etc//shadow"
    assert val("fd.directory", e) == "/etc" and val("fd.filename", e) == "shadow"
    assert (val("fd.typechar", e), val("fd.type", e), val("fd.num", e)) == ("f", "file", 4)
    failed = ev("openat", {"name": "/etc/nope", "flags": 0, "ino": 5}, res=-2)
    assert val("fd.num", failed) == -1 and val("fd.typechar", failed) == "f"
    # as Falco: a failed open made no descriptor; name and directory come from the arguments
    assert (val("fd.name", failed), val("fd.directory", failed)) == ("/etc/nope", "/etc")
    assert val("fd.filename", failed) is None and val("fd.type", failed) is None
    assert val("fd.ino", failed) is None
    d = ev("openat", {"name": "/etc", "flags": os.O_RDONLY | os.O_DIRECTORY}, res=3)
    assert val("fd.typechar", d) == "d" and val("fd.type", d) == "directory"
    assert val("fd.directory", ev("open", {"name": "/x", "flags": 0}, res=3)) == "/"


def test_fd_of_a_connect_and_an_accept() -> None:
    c = ev("connect", {"fd": 3, "family": 2, "addr": "203.0.113.10", "port": 443,
                       "saddr": "192.0.2.5", "sport": 50000, "sotype": 1}, res=0)
    assert val("fd.name", c) == "192.0.2.5:50000->203.0.113.10:443"
    assert val("fd.sip", c) == ipaddress.ip_address("203.0.113.10") and val("fd.sport", c) == 443
    assert val("fd.cip", c) == ipaddress.ip_address("192.0.2.5") and val("fd.cport", c) == 50000
    assert val("fd.lport", c) == 50000 and val("fd.rport", c) == 443
    assert val("fd.l4proto", c) == "tcp" and val("fd.typechar", c) == "4"
    assert val("fd.num", c) == 3 and val("fd.connected", c) is True
    assert val("fd.name_changed", c) is True and val("fd.sockfamily", c) == "ip"
    assert val("fd.ip", c) == (ipaddress.ip_address("192.0.2.5"),
                               ipaddress.ip_address("203.0.113.10"))
    assert val("fd.port", c) == (50000, 443)
    a = ev("accept4", {"fd": 3, "family": 10, "addr": "::1", "port": 40000, "saddr": "::1",
                       "sport": 8080, "flags": 0}, res=7)
    assert val("fd.sport", a) == 8080 and val("fd.cport", a) == 40000
    assert val("fd.lport", a) == 8080 and val("fd.rport", a) == 40000
    assert val("fd.name", a) == "[::1]:40000->[::1]:8080"
    assert val("fd.typechar", a) == "6" and val("fd.num", a) == 7
    u = ev("connect", {"fd": 3, "family": 1, "addr": "/run/docker.sock"}, res=0)
    assert val("fd.name", u) == "/run/docker.sock" and val("fd.typechar", u) == "u"
    assert val("fd.sip", u) is None and val("fd.l4proto", u) is None
    assert val("fd.ip", u) == ()


def test_fd_dns_names_only_when_the_event_has_them() -> None:
    args = {"fd": 3, "family": 2, "addr": "10.96.0.1", "port": 443, "saddr": "10.0.0.2",
            "sport": 40000}
    assert val("fd.sip.name", ev("connect", args)) is None
    named = ev("connect", dict(args, addr_name="kubernetes.default.svc.cluster.local"))
    assert val("fd.sip.name", named) == "kubernetes.default.svc.cluster.local"
    assert val("fd.cip.name", named) is None


def test_fd_of_other_events() -> None:
    s = ev("socket", {"domain": 2, "type": 2, "proto": 0}, res=5)
    assert (val("fd.num", s), val("fd.typechar", s), val("fd.l4proto", s)) == (5, "4", "udp")
    assert val("fd.name", s) is None
    d = ev("dup2", {"oldfd": 3, "newfd": 1, "fd_type": "p"}, res=1)
    assert val("fd.type", d) == "pipe" and val("fd.num", d) == 1
    m = ev("memfd_create", {"name": "x", "flags": 1}, res=3)
    assert val("fd.name", m) == "memfd:x"
    x = ev("execve", {"filename": "/bin/ls"})
    for name in ("fd.name", "fd.num", "fd.typechar", "fd.sip", "fd.l4proto", "fd.connected"):
        assert val(name, x) is None, name


# --- rendering -------------------------------------------------------------------------------


def test_render_prints_missing_as_na_and_values_falco_style() -> None:
    assert resolve("proc.pname").render(None) == "<NA>"
    assert resolve("evt.is_open_read").render(True) == "true"
    assert resolve("fd.sip").render(ipaddress.ip_address("::1")) == "::1"
    assert resolve("proc.aname").render(("a", "b")) == "(a,b)"
