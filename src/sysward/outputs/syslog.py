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
from dataclasses import dataclass

from sysward.alert import Alert
from sysward.errors import SyswardError
from sysward.outputs.base import QueuedOutput

FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13,
    "console": 14, "solaris-cron": 15,
    **{f"local{i}": 16 + i for i in range(8)},
}

#: rsyslog's default maximum message size; longer messages are cut (and still sent).
MAX_MESSAGE_BYTES = 8192
APP_NAME = "sysward"


@dataclass(frozen=True, slots=True)
class SyslogAddress:
    """Either ``path`` (unix datagram socket) or ``host`` + ``port`` (UDP)."""

    path: str = ""
    host: str = ""
    port: int = 514

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    def __str__(self) -> str:
        if self.path:
            return self.path
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str) -> SyslogAddress:
    """``/dev/log`` | ``host:port`` | ``host`` (port 514) | ``[::1]:514``; ValueError if bad."""
    text = text.strip()
    if not text:
        raise ValueError("empty syslog address")
    if text.startswith("/"):
        return SyslogAddress(path=text)
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"bad syslog address {text!r} (missing ']')")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad syslog address {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ValueError(f"bad syslog address {text!r} (no host)")
    port = 514
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port in syslog address {text!r}")
        port = int(port_text)
    return SyslogAddress(host=host, port=port)


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
