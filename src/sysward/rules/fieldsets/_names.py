"""User and group names of this host, cached: for values enrichment did not name.

Falco prints uid arguments as names (``evt.arg.uid=www-data``).  The lookups read this host's
passwd/group databases once per id; they are only used for host processes and arguments.
"""

from __future__ import annotations

import grp
import pwd
from functools import lru_cache


@lru_cache(maxsize=1024)
def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError, ValueError):
        return None


@lru_cache(maxsize=1024)
def user_entry(uid: int) -> tuple[str, str] | None:
    """(home directory, shell) of ``uid`` or None."""
    try:
        entry = pwd.getpwuid(uid)
    except (KeyError, OverflowError, ValueError):
        return None
    return entry.pw_dir, entry.pw_shell


@lru_cache(maxsize=1024)
def group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError, ValueError):
        return None
