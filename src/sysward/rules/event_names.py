"""Which event-type names exist: a misspelt ``evt.type`` value versus a real event sysward
does not capture.  The names are data (``event_names.txt`` beside this module); which of them
sysward captures comes from the event table."""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path

from sysward.events.types import BY_NAME


@cache
def falco_event_names() -> frozenset[str]:
    """Every event name a Falco condition may use (system calls and Falco's own events)."""
    # beside this module (importlib.resources would import tempfile, shutil, bz2, lzma...)
    text = Path(__file__).with_name("event_names.txt").read_text()
    return frozenset(line.strip() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def captured(name: str) -> bool:
    return name in BY_NAME


def exists(name: str) -> bool:
    return captured(name) or name in falco_event_names()


def suggestion(name: str) -> str | None:
    """The closest existing name, captured ones first (for "did you mean")."""
    for pool in (sorted(BY_NAME), sorted(falco_event_names())):
        close = difflib.get_close_matches(name, pool, n=1, cutoff=0.75)
        if close:
            return close[0]
    return None
