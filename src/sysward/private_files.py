"""Files that hold what the agent saw (alerts, captures): readable by their owner only.

Alerts and captured events carry full command lines, paths and user names, so any local user
who can read them learns what every other user runs.  Files sysward creates are 0600 and the
directories it creates for them 0700, whatever the umask; a file or directory that exists
already keeps its mode (the operator chose it) but a group- or world-readable one is warned
about.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("sysward")

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dir(path: Path) -> None:
    """Create ``path`` and missing parents 0700; an existing directory is left as it is."""
    if path.is_dir():
        return
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for created in missing:
        # mkdir's mode is filtered through the umask; parents=True ignores it for parents.
        os.chmod(created, DIR_MODE)


def create_private(path: Path) -> bool:
    """Make sure ``path`` exists, creating it empty with mode 0600; True when it was created."""
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def open_private(path: Path, truncate: bool = False, make_dirs: bool = True,
                 unbuffered: bool = False) -> BinaryIO:
    """Open ``path`` for appending (or truncated), creating it 0600 (and its directory 0700
    unless ``make_dirs`` is false); ``unbuffered``: every write is one write(2)."""
    if make_dirs:
        make_private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if truncate else os.O_APPEND)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.lseek(fd, 0, os.SEEK_END)  # so tell() is the size, as with open(path, "ab")
        return os.fdopen(fd, "wb", buffering=0) if unbuffered else os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def shared_readable(path: Path) -> bool:
    """True when users other than the owner can read ``path``."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def warn_if_shared(path: Path, what: str) -> bool:
    """Log one warning when ``path`` is readable by group or others; True when it is."""
    if not shared_readable(path):
        return False
    mode = stat.S_IMODE(path.stat().st_mode)
    log.warning("%s %s is readable by other users (mode %04o) and holds command lines of "
                "every process that raised an alert; run 'chmod 600 %s'.", what, path, mode, path)
    return True
