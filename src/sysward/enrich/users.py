"""User and group names from the passwd and group databases, cached.

Lookups go through the pwd/grp modules (so NSS sources configured on the host work) and are
cached per id, unknown ids included.  When /etc/passwd or /etc/group change (an mtime or size
check, at most once per ``check_interval_s``) the cache is dropped and refilled lazily, so a
user added while the agent runs gets their name within a second.
"""

from __future__ import annotations

import grp
import os
import pwd
import time


class UserDb:
    def __init__(
        self,
        *,
        passwd_path: str = "/etc/passwd",
        group_path: str = "/etc/group",
        check_interval_s: float = 1.0,
    ) -> None:
        self.passwd_path = passwd_path
        self.group_path = group_path
        self.check_interval_s = check_interval_s
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}
        self._next_check = 0.0
        self._stamp = self._file_stamp()
        self.lookups = 0  # database lookups (cache misses)
        self.refreshes = 0  # cache drops because a database file changed

    def _file_stamp(self) -> tuple[tuple[int, int], ...]:
        out = []
        for path in (self.passwd_path, self.group_path):
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((0, 0))
        return tuple(out)

    def _check(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.check_interval_s
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self._users.clear()
            self._groups.clear()
            self.refreshes += 1

    def user_name(self, uid: int) -> str:
        """Name of ``uid``, or "" when the database has none."""
        self._check()
        name = self._users.get(uid)
        if name is None:
            self.lookups += 1
            try:
                name = pwd.getpwuid(uid).pw_name
            except (KeyError, OverflowError, ValueError):
                name = ""
            self._users[uid] = name
        return name

    def group_name(self, gid: int) -> str:
        """Name of ``gid``, or "" when the database has none."""
        self._check()
        name = self._groups.get(gid)
        if name is None:
            self.lookups += 1
            try:
                name = grp.getgrgid(gid).gr_name
            except (KeyError, OverflowError, ValueError):
                name = ""
            self._groups[gid] = name
        return name
