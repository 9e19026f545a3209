"""Syslog destinations and facilities as the configuration writes them.

Below both the configuration (which validates ``outputs.syslog``) and the syslog output (which
sends to the address), so that neither imports the other's package.
"""

from __future__ import annotations

from dataclasses import dataclass

FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13,
    "console": 14, "solaris-cron": 15,
    **{f"local{i}": 16 + i for i in range(8)},
}


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
