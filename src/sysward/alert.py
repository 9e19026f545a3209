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
        return PRIORITY_LABELS[self]

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


#: Priority.label by value: an enum's ``name`` costs a descriptor call and a dict lookup, and
#: every alert needs its label once or twice.
PRIORITY_LABELS: tuple[str, ...] = tuple(p.name.capitalize() for p in sorted(Priority))


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


def _stamps(ns: int) -> tuple[str, str]:
    """(``time`` as Falco writes it, the clock prefix of the text line) for one alert."""
    global _utc_second, _local_second
    secs, frac = divmod(ns, 1_000_000_000)
    utc, local = _utc_second, _local_second
    if utc[0] != secs:
        utc = _utc_second = (secs, _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)))
    if local[0] != secs:
        local = _local_second = (secs, _time.strftime("%H:%M:%S", _time.localtime(secs)))
    digits = f"{frac:09d}"
    return f"{utc[1]}.{digits}Z", f"{local[1]}.{digits}"


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
    # Set by ``seal``: the alert is final, and its encodings are kept once made.
    _sealed: bool = field(default=False, init=False, repr=False, compare=False)
    _fields_json: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _json: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def text_line(self) -> str:
        """Falco's text form: ``<clock>: <Priority> <output>``."""
        return f"{format_clock(self.time)}: {PRIORITY_LABELS[self.priority]} {self.output}"

    def to_falco_dict(self) -> dict[str, Any]:
        return self._falco_dict(self.output_fields)

    def _falco_dict(self, fields: Any) -> dict[str, Any]:
        stamp, clock = _stamps(self.time)
        label = PRIORITY_LABELS[self.priority]
        out: dict[str, Any] = {
            "hostname": self.hostname,
            "output": f"{clock}: {label} {self.output}",
            "output_fields": fields,
            "priority": label,
            "rule": self.rule,
            "source": self.source,
            "tags": self.tags,
            "time": stamp,
        }
        if self.action_taken is not None:
            out["action_taken"] = self.action_taken
        return out

    def seal(self) -> None:
        """The alert is final (the dispatcher calls this as it hands the alert over): from now
        on ``fields_json`` and ``to_json`` encode once and keep the result, so every output
        shares one encoding (the store's ``output_fields`` column is the same bytes as the
        line's).  The encoding itself happens on the first output thread that needs it, not
        on the rule worker, whose time is what bounds the events/s the agent keeps up with.
        Nothing may change the alert after this.
        """
        self._sealed = True

    def fields_json(self) -> bytes:
        """``output_fields`` as JSON (``default=str`` for values JSON has no type for)."""
        fields = self._fields_json
        if fields is None:
            fields = orjson.dumps(self.output_fields, default=str)
            if self._sealed:
                self._fields_json = fields
        return fields

    def to_json(self) -> bytes:
        line = self._json
        if line is None:
            if self._sealed:
                # A Fragment is copied into the line as it is: byte for byte what one dumps of
                # the whole dict gives, without encoding the fields twice.
                line = self._json = orjson.dumps(
                    self._falco_dict(orjson.Fragment(self.fields_json())), default=str)
            else:
                line = orjson.dumps(self.to_falco_dict(), default=str)
        return line
