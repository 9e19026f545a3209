"""Alerts as RFC 5424 syslog messages, to a local unix datagram socket or a UDP host:port.

Message layout (RFC 5424 section 6)::

    <PRI>1 TIMESTAMP HOSTNAME sysward PROCID alert - MSG

PRI is facility * 8 + severity; Falco's eight priorities map one to one onto the eight
syslog severities (emergency 0 ... debug 7), which is also ``Priority``'s numeric value.
"""

from __future__ import annotations

import os
import socket
import time

from sysward.alert import Alert
from sysward.errors import SyswardError
from sysward.outputs.base import QueuedOutput
from sysward.syslog_spec import FACILITIES, SyslogAddress, parse_address

__all__ = ["APP_NAME", "FACILITIES", "MAX_MESSAGE_BYTES", "SyslogAddress", "SyslogOutput",
           "format_message", "parse_address"]

#: rsyslog's default maximum message size; longer messages are cut (and still sent).
MAX_MESSAGE_BYTES = 8192
APP_NAME = "sysward"


def _printable(text: str, limit: int) -> str:
    """RFC 5424 header fields are printable US-ASCII without spaces, or '-' when empty."""
    cleaned = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def _timestamp(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac // 1000:06d}Z"


def format_message(
    alert: Alert, facility: int, hostname: str = "", fmt: str = "text", procid: int = 0
) -> bytes:
    """One RFC 5424 message for the alert (no trailing newline: one datagram, one message)."""
    pri = facility * 8 + int(alert.priority)
    host = _printable(alert.hostname or hostname, 255)
    header = (
        f"<{pri}>1 {_timestamp(alert.time)} {host} {APP_NAME} {procid or os.getpid()} alert -"
    ).encode("ascii")
    if fmt == "json":
        body = alert.to_json()
    else:
        body = f"{alert.priority.label} {alert.output}".encode("utf-8", "backslashreplace")
    message = header + b" " + body
    return message[:MAX_MESSAGE_BYTES]


class SyslogOutput(QueuedOutput):
    def __init__(
        self,
        address: str = "/dev/log",
        facility: str = "local0",
        fmt: str = "text",
        queue_size: int = 10_000,
    ) -> None:
        try:
            self.address = parse_address(address)
        except ValueError as exc:
            raise SyswardError(f"{exc}; use /dev/log, a socket path or HOST:PORT.") from None
        if facility not in FACILITIES:
            raise SyswardError(
                f"unknown syslog facility {facility!r}; use one of {', '.join(FACILITIES)}."
            )
        self._facility = FACILITIES[facility]
        self._fmt = fmt
        self._hostname = socket.gethostname()
        self._pid = os.getpid()
        self._sock: socket.socket | None = None
        self._target: tuple[object, ...] | str = ""
        try:
            self._connect()
        except OSError as exc:
            hint = (
                "start a syslog daemon or use syslog:HOST:PORT"
                if self.address.is_unix
                else "check the host name"
            )
            raise SyswardError(
                f"cannot reach syslog at {self.address}: {exc.strerror or exc}; {hint}."
            ) from None
        super().__init__("syslog", queue_size=queue_size)

    def _connect(self) -> None:
        if self.address.is_unix:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.connect(self.address.path)
            except OSError:
                sock.close()
                raise
        else:
            family, kind, proto, _, sockaddr = socket.getaddrinfo(
                self.address.host, self.address.port, type=socket.SOCK_DGRAM
            )[0]
            sock = socket.socket(family, kind, proto)
            # connect() on UDP fixes the destination; ICMP errors surface as send() errors.
            sock.connect(sockaddr)
        sock.settimeout(1.0)
        self._sock = sock

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        try:
            self._sock.send(data)
        except (ConnectionRefusedError, FileNotFoundError, ConnectionResetError):
            # The daemon restarted (new socket) or a UDP peer bounced: reconnect once.
            self._sock.close()
            self._sock = None
            self._connect()
            assert self._sock is not None
            self._sock.send(data)

    def _write_batch(self, batch: list[Alert]) -> int:
        written = 0
        for alert in batch:
            msg = format_message(alert, self._facility, self._hostname, self._fmt, self._pid)
            try:
                self._send(msg)
                written += 1
            except OSError as exc:
                self._errors.report(f"send to {self.address} failed: {exc}")
        return written

    def _close_sink(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
