"""Syslog output: RFC 5424 framing to a real unix datagram socket and to UDP on 127.0.0.1."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sysward.alert import Alert, Priority
from sysward.errors import SyswardError
from sysward.outputs import SyslogOutput, format_message, parse_address

# <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP MSG
RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<host>\S+)"
    rb" sysward (?P<pid>\d+) alert - (?P<msg>.*)$",
    re.S,
)


def make_alert(prio: Priority, host: str = "web-1") -> Alert:
    return Alert(time=1_700_000_000_123_456_789, rule="Reverse shell", priority=prio,
                 output="reverse shell (proc=sh connection=127.0.0.1:4444)",
                 output_fields={}, tags=[], hostname=host)


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5.0)
    yield path, sock
    sock.close()


def test_unix_datagram_rfc5424(unix_socket: tuple[str, socket.socket]) -> None:
    path, sock = unix_socket
    out = SyslogOutput(path, facility="local0")
    out.emit(make_alert(Priority.CRITICAL))
    out.emit(make_alert(Priority.DEBUG, host=""))
    first, second = sock.recv(65536), sock.recv(65536)
    out.close(1.0)
    m = RFC5424.match(first)
    assert m, first
    assert int(m["pri"]) == 16 * 8 + 2  # local0, critical
    assert m["ts"] == b"2023-11-14T22:13:20.123456Z"
    assert m["host"] == b"web-1"
    assert m["msg"] == b"Critical reverse shell (proc=sh connection=127.0.0.1:4444)"
    m2 = RFC5424.match(second)
    assert m2 and int(m2["pri"]) == 16 * 8 + 7
    assert m2["host"] == socket.gethostname().encode()  # empty alert hostname -> ours
    assert out.stats()["sent"] == 2


def test_udp_with_facility_and_json(unix_socket: tuple[str, socket.socket]) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5.0)
    port = rx.getsockname()[1]
    out = SyslogOutput(f"127.0.0.1:{port}", facility="auth", fmt="json")
    out.emit(make_alert(Priority.WARNING))
    data = rx.recv(65536)
    out.close(1.0)
    rx.close()
    m = RFC5424.match(data)
    assert m and int(m["pri"]) == 4 * 8 + 4
    assert m["msg"].startswith(b"{") and b'"rule":"Reverse shell"' in m["msg"]


def test_every_priority_maps_to_its_severity() -> None:
    for prio in Priority:
        msg = format_message(make_alert(prio), facility=1, procid=42)
        m = RFC5424.match(msg)
        assert m and int(m["pri"]) == 8 + prio.value and m["pid"] == b"42"


def test_long_messages_are_cut_and_hostname_sanitised() -> None:
    alert = make_alert(Priority.NOTICE, host="bad host\n")
    alert.output = "x" * 20000
    msg = format_message(alert, facility=16)
    assert len(msg) == 8192
    assert b" badhost sysward " in msg


def test_addresses() -> None:
    assert parse_address("/dev/log").is_unix
    assert (parse_address("10.0.0.1").host, parse_address("10.0.0.1").port) == ("10.0.0.1", 514)
    a = parse_address("[::1]:5514")
    assert (a.host, a.port, str(a)) == ("::1", 5514, "[::1]:5514")
    for bad in ("", "host:99999", "[::1", "host:x"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_missing_socket_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(SyswardError, match=r"cannot reach syslog at .*nosock.*syslog daemon"):
        SyslogOutput(str(tmp_path / "nosock"))
    with pytest.raises(SyswardError, match="unknown syslog facility"):
        SyslogOutput("127.0.0.1:514", facility="local9")
