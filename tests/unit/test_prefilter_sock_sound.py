"""The prefilter's socket, namespace-flag and login-uid atoms are sound.

Property test (hypothesis), as tests/unit/test_prefilter_sound.py does for files: random
conditions over the address, network, port, family and unix-path fields of socket events
(Falco's either-end fields and their '!=' included), the unshare/setns flags and
user.loginuid; random events built as wire records (sw_sock / sw_ints) and decoded by the
real decoder, matched by the real rule engine; whenever a rule matches, the Python model of
the kernel filter (over the very tables the sensor gets) must pass the event.
"""

from __future__ import annotations

import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysward.enforce.prefilter import build_tables, compile_approvers, decide
from sysward.enforce.prefilter.model import Facts, Sock, facts_from_event, facts_from_record
from sysward.events.decoder import Decoder
from sysward.events.types import BY_NAME, HEADER, INTS, SOCK
from sysward.rules import load_rules_text

SOCK_TYPES = ("connect", "accept", "accept4", "bind", "listen")
V4 = ["127.0.0.1", "10.1.2.3", "169.254.169.254", "0.0.0.0", "192.168.1.1", "8.8.8.8",
      "172.16.5.4", "172.32.0.1", "100.100.100.200"]
V6 = ["::1", "fd00:ec2::254", "::", "2001:db8::1", "::ffff:127.0.0.1", "fe80::1"]
PORTS = [0, 22, 53, 80, 443, 1023, 1024, 2222, 30000, 32767, 40000, 65535]
UPATHS = [b"", b"/run/docker.sock", b"/var/run/docker.sock", b"/run/x", b"1.2.3.4", b"::1",
          b"sock", b"/tmp/\xffs"]
COMMS = [b"curl", b"sshd", b"python3", b"", b"nc"]
LOGINUIDS = [0, 1000, 0xFFFFFFFF, 0xFFFFFFFE]
_DEC = Decoder(boot_offset=0)


def _header(t: str, res: int, size: int, comm: bytes, euid: int, loginuid: int) -> bytes:
    return HEADER.struct.pack(1, 0, 0, res, size, BY_NAME[t].id, 0, 1, 1, 0, euid, 0, euid, 0,
                              loginuid, 0, 0, 0, 0, comm.ljust(16, b"\0"))


def _pack_addr(fam: int, text: str | None) -> bytes:
    if text is None:
        return bytes(16)
    af = socket.AF_INET if fam == 2 else socket.AF_INET6
    return socket.inet_pton(af, text).ljust(16, b"\0")


@st.composite
def sock_records(draw: st.DrawFn) -> bytes:
    t = draw(st.sampled_from(SOCK_TYPES))
    fam = draw(st.sampled_from([0, 1, 2, 2, 10, 10, 16, 17]))
    pool = V4 if fam == 2 else V6 if fam == 10 else [None]
    addr = _pack_addr(fam, draw(st.sampled_from(pool))) if fam in (2, 10) else bytes(16)
    saddr = _pack_addr(fam, draw(st.sampled_from(pool))) if fam in (2, 10) else bytes(16)
    upath = draw(st.sampled_from(UPATHS))
    payload = SOCK.struct.pack(
        3, 0, 0, addr, saddr, fam, draw(st.sampled_from(PORTS)), draw(st.sampled_from(PORTS)),
        draw(st.sampled_from([1, 2, 3, 5])), draw(st.sampled_from([0, 1, 6, 17])),
        0, len(upath) + 1 if upath else 0, 0, upath.ljust(108, b"\0"), 0)
    size = HEADER.size + len(payload)
    head = _header(t, draw(st.sampled_from([0, -115, -111, -13, 3])), size,
                   draw(st.sampled_from(COMMS)), draw(st.sampled_from([0, 1000])),
                   draw(st.sampled_from(LOGINUIDS)))
    return head + payload


SOCK_LEAVES = [
    "fd.sip = 169.254.169.254", "fd.sip in (10.0.0.0/8, 192.168.0.0/16)",
    "fd.snet in (172.16.0.0/12)", "fd.sip != 127.0.0.1", "fd.rip = ::1", "fd.cip = 127.0.0.1",
    "fd.lip in (127.0.0.0/8)", "fd.rnet = 10.0.0.0/8", "fd.cnet != 127.0.0.0/8",
    "fd.lnet in (::1/128)", "fd.ip = 127.0.0.1", 'fd.ip != "0.0.0.0"',
    'fd.net != "127.0.0.0/8"', "fd.net in (10.0.0.0/8, fd00::/8)", "fd.ip in (::1, 8.8.8.8)",
    "fd.snet in (fd00::/8)", "fd.sip = ::ffff:127.0.0.1", "fd.sport = 22",
    "fd.sport in (80, 443)", "fd.sport != 53", "fd.sport >= 30000", "fd.sport <= 32767",
    "fd.sport > 1024", "fd.sport < 1024", "fd.rport = 443", "fd.lport = 22", "fd.cport != 22",
    "fd.port = 22", "fd.port != 80", "fd.port in (53, 443)", "fd.port > 30000",
    "fd.port < 100", 'fd.sport in ("22", "2222")', "fd.typechar = 4", "fd.typechar in (4, 6)",
    "fd.typechar != u", "fd.typechar = o", "fd.type = ipv4", "fd.type in (ipv4, ipv6)",
    "fd.type != unix", "fd.type = unknown", "fd.sockfamily = ip", "fd.sockfamily != ip",
    "fd.sockfamily = unix", "fd.name = /run/docker.sock",
    "fd.name in (/var/run/docker.sock, /run/docker.sock)", "fd.name startswith /run/",
    'fd.name = "/tmp/\\xffs"', "fd.name contains docker", "fd.l4proto = tcp",
    "user.loginuid = -1", "user.loginuid != -1", "user.loginuid >= 1000",
    "user.loginuid = 0", "user.loginuid in (0, 1000)", "user.loginuid > 0",
    "evt.rawres = -115", "evt.rawres >= 0", "proc.name = curl", "user.uid = 0",
    "evt.res = EINPROGRESS", "evt.res != SUCCESS", "evt.res in (ECONNREFUSED, EINPROGRESS)",
    "evt.res = SUCCESS", "evt.res != EACCES", "evt.res = -115", "evt.res = EWOULDBLOCK",
    "fd.num = 3", "proc.cmdline contains x",
]


@st.composite
def conditions(draw: st.DrawFn, leaves: list[str], depth: int = 0) -> str:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(leaves))
    op = draw(st.sampled_from(["and", "or", "not"]))
    if op == "not":
        return f"not ({draw(conditions(leaves, depth + 1))})"
    kids = draw(st.lists(conditions(leaves, depth + 1), min_size=2, max_size=3))
    return "(" + f" {op} ".join(kids) + ")"


def _rules(conds: list[str], types: list[str]) -> str:
    return "".join(f"- rule: r{i}\n  desc: d\n  condition: evt.type in ({t}) and ({c})\n"
                   "  output: o\n  priority: WARNING\n"
                   for i, (c, t) in enumerate(zip(conds, types, strict=True)))


def _check(text: str, types: tuple[str, ...], records: list[bytes]) -> int:
    res = load_rules_text(text)
    res.raise_for_errors()
    tables = build_tables(compile_approvers(res.ruleset.rules, types))
    matched = 0
    for rec in records:
        ev = _DEC.decode(rec)
        assert ev is not None
        hit = res.ruleset.match(ev)
        if not hit:
            continue
        matched += 1
        for f in (facts_from_record(rec), facts_from_event(ev)):
            assert decide(tables, f), (
                f"rule {hit[0].name} matches {ev.type} {ev.args} comm={ev.comm!r} res={ev.res} "
                f"loginuid={ev.loginuid} but the kernel model rejects it ({f}; condition: "
                f"{hit[0].condition_text})")
    return matched


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions(SOCK_LEAVES), min_size=1, max_size=3),
       st.lists(st.sampled_from([", ".join(SOCK_TYPES), "connect", "accept, accept4",
                                 "bind, listen"]), min_size=3, max_size=3),
       st.lists(sock_records(), min_size=20, max_size=40))
def test_socket_atoms_sound(conds: list[str], types: list[str], recs: list[bytes]) -> None:
    _check(_rules(conds, types[:len(conds)]), SOCK_TYPES, recs)


NS_BITS = [0x20000, 0x10000000, 0x40000000, 0x20000000, 0x8000000, 0x4000000, 0x2000000, 0x80,
           0x1, 0x400, 0x100]
NS_LEAVES = [
    "evt.arg.flags contains CLONE_NEWNS", "evt.arg.flags contains CLONE_NEWUSER",
    "evt.arg.flags contains CLONE_NEWTIME", "evt.arg.flags contains NEWPID",
    "evt.arg.flags contains CLONE_NEW", "evt.arg.flags contains CLONE_FILES",
    "evt.arg.nstype contains CLONE_NEWNET", "evt.arg.nstype contains CLONE_NEWNS",
    "evt.arg.flags = 0", "evt.arg.flags contains 1", "user.loginuid = -1",
    "user.loginuid != 1000", "proc.name = unshare", "evt.rawres = 0",
]


@st.composite
def ns_records(draw: st.DrawFn) -> bytes:
    t = draw(st.sampled_from(["unshare", "setns"]))
    flags = 0
    for b in draw(st.lists(st.sampled_from(NS_BITS), max_size=3)):
        flags |= b
    ints = (flags, 0, 0, 0) if t == "unshare" else (3, flags, 0, 0)
    payload = INTS.struct.pack(*ints)
    size = HEADER.size + len(payload)
    return _header(t, draw(st.sampled_from([0, -1, -22])), size,
                   draw(st.sampled_from([b"unshare", b"cat"])), 0,
                   draw(st.sampled_from(LOGINUIDS))) + payload


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions(NS_LEAVES), min_size=1, max_size=3),
       st.lists(ns_records(), min_size=10, max_size=30))
def test_namespace_flags_sound(conds: list[str], recs: list[bytes]) -> None:
    _check(_rules(conds, ["unshare, setns"] * len(conds)), ("unshare", "setns"), recs)


# -- plain examples: what the kernel now rejects -------------------------------------------

def _one(cond: str, types: tuple[str, ...] = SOCK_TYPES):  # type: ignore[no-untyped-def]
    res = load_rules_text(_rules([cond], [", ".join(types)]))
    res.raise_for_errors()
    return build_tables(compile_approvers(res.ruleset.rules, types))


def _connect(addr: str, port: int, fam: int = 2, saddr: str = "10.0.0.5", sport: int = 40000,
             upath: bytes = b"", comm: bytes = b"curl") -> Facts:
    a = _pack_addr(fam, addr) if fam in (2, 10) else bytes(16)
    s = _pack_addr(fam, saddr) if fam in (2, 10) else bytes(16)
    sock = Sock(fam, port, sport, 1, 6, a, s, upath)
    return Facts("connect", (*sock.inputs(), 0, 0), comm, None, None, -1, sock)


def test_networks_and_ports_reject_what_no_rule_can_match() -> None:
    t = _one("fd.sip in (169.254.169.254) or (fd.snet in (10.0.0.0/8) and fd.sport = 22)")
    assert decide(t, _connect("169.254.169.254", 80))
    assert decide(t, _connect("10.9.9.9", 22))
    assert not decide(t, _connect("10.9.9.9", 80))
    assert not decide(t, _connect("8.8.8.8", 22))
    assert not decide(t, _connect("::1", 22, fam=10, saddr="::1"))


def test_either_end_not_equal_means_neither_end() -> None:
    t = _one('fd.net != "127.0.0.0/8"')
    assert not decide(t, _connect("127.0.0.1", 80, saddr="127.0.0.1"))
    # neither end may be in the network: one loopback end is enough to fail the rule
    assert not decide(t, _connect("8.8.8.8", 80, saddr="127.0.0.1"))
    assert decide(t, _connect("8.8.8.8", 80, saddr="10.0.0.5"))
    assert not decide(t, _connect("", 0, fam=1, upath=b"/run/x"))  # no end at all
    assert decide(t, _connect("", 0, fam=1, upath=b"1.2.3.4"))  # may read as an address


def test_unix_socket_paths() -> None:
    t = _one("fd.name in (/run/docker.sock)")
    assert decide(t, _connect("", 0, fam=1, upath=b"/run/docker.sock"))
    assert not decide(t, _connect("", 0, fam=1, upath=b"/run/other.sock"))
    assert not decide(t, _connect("10.0.0.1", 80))


def test_namespace_flags_and_loginuid() -> None:
    t = _one("evt.arg.flags contains CLONE_NEWUSER and user.loginuid != -1", ("unshare",))

    def unshare(flags: int, loginuid: int) -> Facts:
        return Facts("unshare", (flags, 0, 0, 0, 0, 0), b"unshare", None, None, loginuid)

    assert decide(t, unshare(0x10000000 | 0x20000, 1000))
    assert not decide(t, unshare(0x20000, 1000))
    assert not decide(t, unshare(0x10000000, -1))
    assert struct.calcsize("<H") == 2


SOCKET_LEAVES = [
    "evt.arg.type contains SOCK_RAW", "evt.arg.type contains SOCK_CLOEXEC",
    "evt.arg.type contains DGRAM", "evt.arg.type contains SOCK_", "evt.arg.type contains 3",
    "evt.arg.domain contains AF_INET", "evt.arg.domain = AF_PACKET", "fd.sockfamily = ip",
    "fd.sockfamily != unix", "fd.typechar = 4", "fd.type != ipv6", "fd.type = netlink",
    "fd.typechar in (u, o)", "evt.rawres >= 0", "proc.name = nc",
]


@st.composite
def socket_records(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from([1, 2, 3, 5, 7, 10, 15]))
    for bit in draw(st.lists(st.sampled_from([0o4000, 0o2000000, 0o10]), max_size=2)):
        kind |= bit
    ints = (draw(st.sampled_from([1, 2, 10, 16, 17, 0, 40])), kind,
            draw(st.sampled_from([0, 6, 17, 255])), 0)
    payload = INTS.struct.pack(*ints)
    size = HEADER.size + len(payload)
    return _header("socket", draw(st.sampled_from([3, -1, -97])), size,
                   draw(st.sampled_from([b"nc", b"cat"])), 0, 0) + payload


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions(SOCKET_LEAVES), min_size=1, max_size=3),
       st.lists(socket_records(), min_size=10, max_size=30))
def test_socket_type_and_family_sound(conds: list[str], recs: list[bytes]) -> None:
    _check(_rules(conds, ["socket"] * len(conds)), ("socket",), recs)


def test_raw_socket_type_is_a_kernel_test() -> None:
    t = _one("evt.arg.type contains SOCK_RAW and fd.sockfamily = ip", ("socket",))

    def sock(domain: int, kind: int) -> Facts:
        return Facts("socket", (domain, kind, 0, 0, 3, 0), b"nc", None, None)

    assert decide(t, sock(2, 3 | 0o2000000))
    assert not decide(t, sock(2, 2))
    assert not decide(t, sock(1, 3))
