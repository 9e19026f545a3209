"""The alert: what the rule stage hands to the outputs.

Its JSON form is Falco's alert shape (``time``, ``rule``, ``priority``, ``output``,
``output_fields``, ``tags``, ``hostname``, ``source``) so that existing consumers such as
falcosidekick and SIEM pipelines accept sysward's alerts unchanged.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import orjson


class Priority(IntEnum):
    """Falco's priorities; a lower value is more severe."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7

    @property
    def label(self) -> str:
        """The spelling Falco uses in alerts: ``Warning``, ``Informational``..."""
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str) -> Priority:
        """Accept any case, and Falco's aliases ``info`` and ``warn``; ValueError otherwise."""
        key = text.strip().upper()
        key = {"INFO": "INFORMATIONAL", "WARN": "WARNING"}.get(key, key)
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(p.name.lower() for p in cls)
            raise ValueError(f"unknown priority {text!r} (expected one of: {names})") from None


# The formatted second of the last alert, per format: alerts come in bursts within one
# second, and strftime + gmtime/localtime cost about a microsecond each per call.  A tuple is
# replaced whole, so threads reading it see a consistent (second, text) pair.
_utc_second: tuple[int, str] = (-1, "")
_local_second: tuple[int, str] = (-1, "")


def format_time(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds, as Falco writes ``time``."""
    global _utc_second
    secs, frac = divmod(ns, 1_000_000_000)
    cached = _utc_second
    if cached[0] != secs:
        cached = _utc_second = (secs, _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)))
    return f"{cached[1]}.{frac:09d}Z"


def format_clock(ns: int) -> str:
    """Local ``HH:MM:SS.nnnnnnnnn``, the prefix of Falco's text output line."""
    global _local_second
    secs, frac = divmod(ns, 1_000_000_000)
    cached = _local_second
    if cached[0] != secs:
        cached = _local_second = (secs, _time.strftime("%H:%M:%S", _time.localtime(secs)))
    return f"{cached[1]}.{frac:09d}"


@dataclass(slots=True)
class Alert:
    time: int  # ns since the epoch: the time of the event that fired the rule
    rule: str
    priority: Priority
    output: str  # the rule's output template rendered for this event (no time/priority prefix)
    output_fields: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    hostname: str = ""
    source: str = "syscall"
    action_taken: str | None = None  # enforcement: killed / denied / would-kill / failed: ...

    def text_line(self) -> str:
        """Falco's text form: ``<clock>: <Priority> <output>``."""
        return f"{format_clock(self.time)}: {self.priority.label} {self.output}"

    def to_falco_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hostname": self.hostname,
            "output": self.text_line(),
            "output_fields": self.output_fields,
            "priority": self.priority.label,
            "rule": self.rule,
            "source": self.source,
            "tags": self.tags,
            "time": format_time(self.time),
        }
        if self.action_taken is not None:
            out["action_taken"] = self.action_taken
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_falco_dict(), default=str)
