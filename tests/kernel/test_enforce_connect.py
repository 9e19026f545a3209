"""Deny in the kernel: cgroup connect/sendmsg programs refuse forbidden destinations (EPERM)
for the processes of the cgroup they are attached to, while other destinations still work."""

from __future__ import annotations

import socket
from pathlib import Path

from enforce_helpers import (
    enforcer,
    listener,
    private_cgroup,
    rules,
    run_in_cgroup,
    started,
    wait_reports,
)

CHILD = """
import errno, socket
def attempt(fam, host, port, kind):
    s = socket.socket(fam, socket.SOCK_STREAM if kind == 'tcp' else socket.SOCK_DGRAM)
    try:
        if kind == 'tcp':
            s.connect((host, port))
        else:
            s.sendto(b'x', (host, port))
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
for spec in ARGS:
    print(spec[0], attempt(*spec[1:]))
"""


def _child(cg: Path, specs: list[tuple[str, int, str, int, str]]) -> dict[str, str]:
    code = CHILD.replace("ARGS", repr(specs))
    p = run_in_cgroup(cg, code)
    assert p.returncode == 0, p.stderr
    return dict(line.split() for line in p.stdout.splitlines())


def test_deny_connect_v4_v6_and_udp() -> None:
    bad4, good4 = listener(socket.AF_INET, "127.0.0.1"), listener(socket.AF_INET, "127.0.0.1")
    bad6, good6 = listener(socket.AF_INET6, "::1"), listener(socket.AF_INET6, "::1")
    b4, g4 = bad4.getsockname()[1], good4.getsockname()[1]
    b6, g6 = bad6.getsockname()[1], good6.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    u4 = udp.getsockname()[1]
    specs = [("bad4", 2, "127.0.0.1", b4, "tcp"), ("good4", 2, "127.0.0.1", g4, "tcp"),
             ("bad6", 10, "::1", b6, "tcp"), ("good6", 10, "::1", g6, "tcp"),
             ("udp4", 2, "127.0.0.1", u4, "udp"), ("mapped", 10, "::ffff:127.0.0.1", b4, "tcp")]
    try:
        with private_cgroup() as cg:
            # without enforcement every attempt works: the test can tell a refusal apart
            assert set(_child(cg, specs).values()) == {"ok"}
            text = rules(
                ("no bad4", f"evt.type = connect and fd.rip = 127.0.0.1 and fd.rport in "
                            f"({b4}, {u4})", "deny"),
                ("no bad6", f"evt.type = connect and fd.snet = ::1/128 and fd.sport = {b6}",
                 "deny"),
            )
            enf = enforcer(text, cgroup=str(cg))
            with started(enf):
                got = _child(cg, specs)
                assert got == {"bad4": "EPERM", "good4": "ok", "bad6": "EPERM", "good6": "ok",
                               "udp4": "EPERM", "mapped": "EPERM"}
                reps = wait_reports(enf, lambda r: r.hook == "connect")
                reps += wait_reports(enf, lambda r: r.hook == "connect", timeout=0.3)
                assert {r.action for r in reps} == {"denied"}
                assert {(r.addr, r.port) for r in reps} >= {("127.0.0.1", b4), ("::1", b6)}
                assert enf.counters()["denied"] >= 4
                # the agent's own process is outside the cgroup: not affected
                with socket.create_connection(("127.0.0.1", b4), timeout=2):
                    pass
            # detached: works again
            assert _child(cg, specs[:1]) == {"bad4": "ok"}
    finally:
        for s in (bad4, good4, bad6, good6, udp):
            s.close()


def test_audit_mode_would_deny() -> None:
    bad = listener(socket.AF_INET, "127.0.0.1")
    port = bad.getsockname()[1]
    try:
        with private_cgroup() as cg:
            enf = enforcer(rules(("audit bad", f"evt.type = connect and fd.rport = {port} and "
                                               "fd.rnet = 127.0.0.0/8", "deny")),
                           mode="audit", cgroup=str(cg))
            with started(enf):
                assert _child(cg, [("bad", 2, "127.0.0.1", port, "tcp")]) == {"bad": "ok"}
                reps = wait_reports(enf, lambda r: r.port == port)
                assert reps and {r.action for r in reps} == {"would-deny"}
    finally:
        bad.close()


def test_kill_on_connect_also_stops_the_packet() -> None:
    bad = listener(socket.AF_INET, "127.0.0.1")
    port = bad.getsockname()[1]
    bad.settimeout(0.3)
    try:
        with private_cgroup() as cg:
            enf = enforcer(rules(("kill bad", f"evt.type = connect and fd.rport = {port} and "
                                              "fd.rip = 127.0.0.1", "kill")), cgroup=str(cg))
            with started(enf):
                code = CHILD.replace("ARGS", repr([("bad", 2, "127.0.0.1", port, "tcp")]))
                p = run_in_cgroup(cg, code)
                assert p.returncode == -9 and "ok" not in p.stdout
                try:
                    conn, _ = bad.accept()
                    conn.close()
                    raise AssertionError("the killed process's connection reached the listener")
                except TimeoutError:
                    pass
                reps = wait_reports(enf, lambda r: r.port == port)
                assert [r.action for r in reps] == ["killed"]
    finally:
        bad.close()
