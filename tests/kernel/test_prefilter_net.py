"""The kernel prefilter's socket, namespace-flag and login-uid atoms against the Python model,
event by event, on real syscalls; and a reload that rewrites the tables in place.

The sensor runs in audit mode (every record still arrives, the kernel marks those it would
have dropped) with the default rules plus test rules on addresses, networks, ports, the
socket family, unix paths, unshare/setns flags and user.loginuid.  A child process binds,
listens, connects and accepts over real IPv4 and IPv6 loopback sockets, connects UDP
sockets to real remote addresses (no packet needs to leave), connects unix sockets (absolute,
relative and abstract paths), unshares namespaces with various flags, setns into its own
namespaces, sets its login uid and finally runs as another uid.  For each of its records the
model's decision, from the record's own bytes, must be the kernel's.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sensor_helpers import in_child

from sysward.agent.sensors import Sensor
from sysward.enforce.prefilter import build_tables, compile_approvers, decide
from sysward.enforce.prefilter.abi import Setting
from sysward.enforce.prefilter.model import facts_from_record
from sysward.events.types import BY_ID, HEADER, HeaderFlag
from sysward.rules import load_rules, load_rules_text

LIBC = ctypes.CDLL(None, use_errno=True)
ROOT = Path(__file__).parents[2]
TYPES = ["connect", "accept", "accept4", "bind", "listen", "unshare", "setns", "socket"]
_PID = HEADER.offsets()["pid"][0]
_FLAGS = HEADER.offsets()["flags"][0]
_TYPE = HEADER.offsets()["type"][0]
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET = 0x20000, 0x4000000, 0x8000000, 0x40000000
CLONE_NEWUSER, CLONE_NEWTIME = 0x10000000, 0x80
PORT = 47211  # the loopback listeners' port (a clash only turns a bind into a failure)

TEST_RULES = """
- rule: kn metadata over udp
  desc: d
  condition: evt.type = connect and fd.sip in (169.254.169.254, 10.0.0.0/8) and
    fd.sport in (53, 80)
  output: o
  priority: WARNING
- rule: kn loopback listener
  desc: d
  condition: evt.type in (bind, listen) and fd.sip = 127.0.0.1 and fd.sport >= 40000
  output: o
  priority: WARNING
- rule: kn not loopback
  desc: d
  condition: evt.type in (accept, accept4, connect) and fd.net != "127.0.0.0/8" and
    fd.typechar in (4, 6) and not fd.snet in (192.0.2.0/24) and not proc.name = kn-quiet
  output: o
  priority: WARNING
- rule: kn v6 as nobody
  desc: d
  condition: evt.type = connect and fd.rip = ::1 and fd.lport != 22 and user.uid = 65534
  output: o
  priority: WARNING
- rule: kn unix path
  desc: d
  condition: evt.type = connect and fd.name in (/run/kn-test.sock) and user.loginuid != -1
  output: o
  priority: WARNING
- rule: kn uts unshare
  desc: d
  condition: evt.type = unshare and evt.arg.flags contains CLONE_NEWUTS and
    not proc.name = kn-quiet
  output: o
  priority: WARNING
- rule: kn setns net
  desc: d
  condition: evt.type = setns and evt.arg.nstype contains CLONE_NEWNET
  output: o
  priority: WARNING
- rule: kn logged-in mount namespace
  desc: d
  condition: evt.type = unshare and user.loginuid >= 1000 and evt.arg.flags contains CLONE_NEWNS
  output: o
  priority: WARNING
- rule: kn inet socket
  desc: d
  condition: evt.type = socket and fd.sockfamily = ip and fd.type != ipv6
  output: o
  priority: WARNING
"""


def _ruleset(tmp: Path, text: str = TEST_RULES):  # type: ignore[no-untyped-def]
    f = tmp / "kn-test.yaml"
    f.write_text(text)
    res = load_rules([ROOT / "src" / "sysward" / "rules.d", f])
    res.raise_for_errors()
    return res.ruleset


def _try(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except OSError:
        return None


def _udp_connect(family: int, addr: str, port: int) -> None:
    s = socket.socket(family, socket.SOCK_DGRAM)
    _try(s.connect, (addr, port))
    s.close()


def _tcp_nonblocking(family: int, addr: str, port: int) -> None:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setblocking(False)
    _try(s.connect, (addr, port))  # EINPROGRESS / ENETUNREACH: a record either way
    s.close()


def _loopback_pair(family: int, host: str, accept4: bool) -> None:
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if _try(srv.bind, (host, PORT)) is None and srv.getsockname()[1] != PORT:
        srv.close()
        return
    srv.listen(4)
    cli = socket.socket(family, socket.SOCK_STREAM)
    _try(cli.connect, (host, PORT))
    if accept4:
        conn = _try(srv.accept)  # Python's accept is accept4 where the libc has it
    else:
        fd = LIBC.accept(srv.fileno(), None, None)
        conn = (socket.socket(fileno=fd), None) if fd >= 0 else None
    if conn is not None:
        conn[0].close()
    cli.close()
    srv.close()


def _unix_connect(path: bytes) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _try(s.connect, path)
    s.close()


def _unshare(flags: int) -> None:
    LIBC.unshare(flags)  # failures are records too


def _setns(ns: str, nstype: int) -> None:
    fd = os.open(f"/proc/self/ns/{ns}", os.O_RDONLY)
    LIBC.setns(fd, nstype)
    os.close(fd)


def _workload(tmp: Path) -> None:
    """Real syscalls over every input of the socket atoms."""
    _loopback_pair(socket.AF_INET, "127.0.0.1", accept4=True)
    _loopback_pair(socket.AF_INET, "127.0.0.1", accept4=False)
    _loopback_pair(socket.AF_INET6, "::1", accept4=True)
    for addr, port in (("169.254.169.254", 80), ("10.1.2.3", 53), ("10.1.2.3", 443),
                       ("8.8.8.8", 53), ("192.0.2.7", 53), ("127.0.0.1", 53)):
        _udp_connect(socket.AF_INET, addr, port)
    for addr, port in (("::1", 53), ("2001:db8::1", 80)):
        _udp_connect(socket.AF_INET6, addr, port)
    _tcp_nonblocking(socket.AF_INET, "192.0.2.1", 22)
    _tcp_nonblocking(socket.AF_INET, "198.51.100.9", 8080)
    _unix_connect(b"/run/kn-test.sock")  # ENOENT: a record with the path
    _unix_connect(str(tmp / "other.sock").encode())
    _unix_connect(b"\0kn-abstract")
    os.chdir(tmp)
    _unix_connect(b"1.2.3.4")  # relative: may read as an address (unknown to the kernel)
    _unix_connect(b"rel.sock")
    for dom, typ in ((socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET6, socket.SOCK_STREAM),
                     (socket.AF_UNIX, socket.SOCK_STREAM), (socket.AF_NETLINK, socket.SOCK_RAW)):
        s = _try(socket.socket, dom, typ)
        if s is not None:
            s.close()
    # as a container runtime, which the default namespace rules except: the test rules decide
    LIBC.prctl(15, b"runc", 0, 0, 0)
    for flags in (CLONE_NEWUTS, CLONE_NEWNS, CLONE_NEWIPC | CLONE_NEWNS, CLONE_NEWTIME,
                  CLONE_NEWNET, 0, 0x1):
        _unshare(flags)
    _setns("net", CLONE_NEWNET)
    _setns("uts", CLONE_NEWUTS)
    _setns("uts", 0)
    LIBC.prctl(15, b"kn-quiet", 0, 0, 0)
    _unshare(CLONE_NEWUTS)
    _udp_connect(socket.AF_INET, "8.8.4.4", 53)
    LIBC.prctl(15, b"runc", 0, 0, 0)
    # a login uid (allowed once for a process that has none, with CAP_AUDIT_CONTROL)
    with contextlib.suppress(OSError):
        Path("/proc/self/loginuid").write_text("1000")
    _unshare(CLONE_NEWNS)
    _unshare(CLONE_NEWUTS)
    _unix_connect(b"/run/kn-test.sock")
    # and as another user
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    _udp_connect(socket.AF_INET6, "::1", 53)
    _udp_connect(socket.AF_INET, "169.254.169.254", 80)
    _unshare(CLONE_NEWUTS)  # EPERM
    _unshare(CLONE_NEWUSER | CLONE_NEWNS)  # allowed unprivileged where the kernel lets it


def _records_of(sensor: Sensor, pid: int, done: float = 1.0) -> list[bytes]:
    out: list[bytes] = []

    def on_batch(records: list[bytes]) -> None:
        out.extend(r for r in records if struct.unpack_from("<I", r, _PID)[0] == pid)

    reader = sensor.ring_buffer(on_batch)
    try:
        deadline = time.monotonic() + done
        while time.monotonic() < deadline:
            reader.poll(20)
    finally:
        reader.close()
    return out


def _compare(tables, records: list[bytes]) -> tuple[dict[str, list[int]], list[str]]:  # type: ignore[no-untyped-def]
    """Per type [rejected, passed] by the kernel, and the records where the model differs."""
    per: dict[str, list[int]] = {}
    mismatches = []
    for rec in records:
        facts = facts_from_record(rec)
        kernel_rejects = bool(struct.unpack_from("<I", rec, _FLAGS)[0] & HeaderFlag.PF_REJECT)
        if kernel_rejects == decide(tables, facts):
            mismatches.append(f"{facts} kernel {'rejects' if kernel_rejects else 'passes'}")
        name = BY_ID[struct.unpack_from("<H", rec, _TYPE)[0]].name
        per.setdefault(name, [0, 0])[0 if kernel_rejects else 1] += 1
    return per, mismatches


def test_socket_and_namespace_decisions_equal_the_model(tmp_path: Path) -> None:
    ruleset = _ruleset(tmp_path)
    approvers = compile_approvers(ruleset.rules, TYPES)
    for t in ("connect", "accept4", "bind", "listen", "unshare", "setns", "socket"):
        assert not approvers.by_type[t].passes_all, (t, approvers.by_type[t].reason)
    tables = build_tables(approvers)
    with Sensor(TYPES, prefilter=tables, prefilter_setting=Setting.AUDIT) as sensor:
        pid = in_child(lambda: _workload(tmp_path))
        records = _records_of(sensor, pid)
    per, mismatches = _compare(tables, records)
    assert not mismatches, "\n".join(mismatches)
    # the workload reached every type, and the kernel both rejected and passed
    for t in ("connect", "bind", "listen", "unshare", "setns", "socket"):
        assert t in per, f"no {t} record arrived: {per}"
    assert "accept" in per or "accept4" in per, per
    assert per["connect"][0] >= 3 and per["connect"][1] >= 3, per
    assert per["unshare"][0] >= 2 and per["unshare"][1] >= 2, per
    assert per["setns"][0] >= 1 and per["setns"][1] >= 1, per
    assert sum(r for r, _ in per.values()) >= 12, per


RULE_A = """
- rule: kn reload
  desc: d
  condition: evt.type = connect and fd.sport = {port} and fd.sip = 127.0.0.1
  output: o
  priority: WARNING
- rule: kn reload open
  desc: d
  condition: evt.type = openat and fd.name = {path}
  output: o
  priority: WARNING
"""


def test_reload_without_new_types_rewrites_the_tables_in_place(tmp_path: Path) -> None:
    """The agent's reload of rules on the same types (Sensor.set_prefilter, what the engine
    calls): the new approvers decide from then on, the old ones no more."""
    types = ["connect", "openat"]
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")

    def tables_for(port: int, path: Path):  # type: ignore[no-untyped-def]
        res = load_rules_text(RULE_A.format(port=port, path=path))
        res.raise_for_errors()
        return build_tables(compile_approvers(res.ruleset.rules, types))

    def child() -> None:
        for port in (41001, 41002):
            _udp_connect(socket.AF_INET, "127.0.0.1", port)
        for p in (a, b):
            os.close(os.open(p, os.O_RDONLY))

    def decisions(sensor: Sensor, tables) -> dict[tuple[str, object], bool]:  # type: ignore[no-untyped-def]
        pid = in_child(child)
        got: dict[tuple[str, object], bool] = {}
        recs = _records_of(sensor, pid)
        _, mismatches = _compare(tables, recs)
        assert not mismatches, "\n".join(mismatches)
        for rec in recs:
            f = facts_from_record(rec)
            rejected = bool(struct.unpack_from("<I", rec, _FLAGS)[0] & HeaderFlag.PF_REJECT)
            if f.type == "connect" and f.sock is not None:
                got[("connect", f.sock.port)] = not rejected
            elif f.type == "openat" and f.name in (str(a).encode(), str(b).encode()):
                got[("openat", f.name)] = not rejected
        return got

    first, second = tables_for(41001, a), tables_for(41002, b)
    with Sensor(types, prefilter=first, prefilter_setting=Setting.AUDIT) as sensor:
        before = decisions(sensor, first)
        sensor.set_prefilter(second)
        after = decisions(sensor, second)
        sensor.set_prefilter(first)
        again = decisions(sensor, first)
    ka, kb = ("openat", str(a).encode()), ("openat", str(b).encode())
    assert before == {("connect", 41001): True, ("connect", 41002): False, ka: True, kb: False}
    assert after == {("connect", 41001): False, ("connect", 41002): True, ka: False, kb: True}
    assert again == before


def test_rejected_connects_are_counted_and_dropped(tmp_path: Path) -> None:
    ruleset = _ruleset(tmp_path)
    tables = build_tables(compile_approvers(ruleset.rules, TYPES))
    with Sensor(TYPES, prefilter=tables, prefilter_setting=Setting.ON) as sensor:
        before = sensor.counters()["connect"].rejected

        def child() -> None:
            LIBC.prctl(15, b"kn-quiet", 0, 0, 0)
            for _ in range(30):
                _udp_connect(socket.AF_INET, "127.0.0.1", 53)  # no rule can match it
            _udp_connect(socket.AF_INET, "169.254.169.254", 80)  # a rule can

        pid = in_child(child)
        records = _records_of(sensor, pid)
        after = sensor.counters()["connect"]
    ports = [f.sock.port for f in map(facts_from_record, records)
             if f.type == "connect" and f.sock is not None]
    assert 80 in ports and 53 not in ports, ports
    assert after.rejected - before >= 30
    assert errno.EINPROGRESS == 115
