"""Keeping Process entries small: shared strings and ints, bounded and filtered lists.

- Strings that repeat from process to process (exe paths, comms, cwd, user, group and
  container names, cgroup paths) go through ``sys.intern``: one object per distinct text.
  Interned strings are freed when the last entry using them goes, so the pool cannot grow
  without bound the way a hand-kept dict would.
- Ints that repeat (capability sets, namespace inodes) come from a small pool.
- argv and env keep at most ``max_argv_bytes`` / ``max_env_bytes`` of storage per process
  (estimated as the table charges it); the list the exec event carried is kept as it is,
  not copied, when it fits.
- env keeps only what the loaded rules and outputs can read: nothing when no rule uses
  ``proc.env``, the entries of the keys they name (``proc.env[LD_PRELOAD]``), or everything
  when one reads the whole environment (``env_keys`` None).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from sysward.enrich.proctable import ITEM_BYTES, LIST_BYTES
from sysward.events.model import Process

#: the one empty list entries without env share (nothing mutates Process lists in place)
NO_ITEMS: list[str] = []

#: distinct ints kept in the pool before it is started afresh (sharing only, no facts lost)
_INT_POOL_MAX = 4096


class Compactor:
    __slots__ = ("max_argv_bytes", "max_env_bytes", "_env_keys", "_env_prefixes", "capped",
                 "_ints")

    def __init__(self, max_argv_bytes: int = 16384, max_env_bytes: int = 8192,
                 env_keys: Iterable[str] | None = None) -> None:
        self.max_argv_bytes = max_argv_bytes
        self.max_env_bytes = max_env_bytes
        self.env_keys = None if env_keys is None else frozenset(env_keys)
        self.capped = 0  # argv or env lists cut at their cap
        self._ints: dict[int, int] = {}

    @property
    def env_keys(self) -> frozenset[str] | None:
        """The environment variables kept; None: all of them."""
        return self._env_keys

    @env_keys.setter
    def env_keys(self, keys: frozenset[str] | None) -> None:
        self._env_keys = keys
        # "KEY=" prefixes: one str.startswith per entry, in C, is the cheapest filter
        self._env_prefixes = tuple(f"{k}=" for k in sorted(keys)) if keys else ()

    def argv(self, items: list[str]) -> list[str]:
        return self._cap(items, self.max_argv_bytes)

    def env(self, items: list[str] | None) -> list[str]:
        if not items:
            return NO_ITEMS
        if self._env_keys is not None:
            prefixes = self._env_prefixes
            if not prefixes:
                return NO_ITEMS
            items = [e for e in items if e.startswith(prefixes)]
            if not items:
                return NO_ITEMS
        return self._cap(items, self.max_env_bytes)

    def intern_int(self, value: int) -> int:
        pool = self._ints
        got = pool.get(value)
        if got is not None:
            return got
        if len(pool) >= _INT_POOL_MAX:
            pool.clear()
        pool[value] = value
        return value

    def process(self, proc: Process) -> None:
        """Share the repeated strings and ints of a Process read from /proc, cap its lists."""
        intern, num = sys.intern, self.intern_int
        proc.comm = intern(proc.comm)
        proc.exepath = intern(proc.exepath)
        proc.cwd = intern(proc.cwd)
        proc.cgroup = intern(proc.cgroup)
        proc.user, proc.group = intern(proc.user), intern(proc.group)
        proc.loginname = intern(proc.loginname)
        proc.container_id = intern(proc.container_id)
        proc.container_name = intern(proc.container_name)
        proc.container_image = intern(proc.container_image)
        proc.cap_effective = num(proc.cap_effective)
        proc.cap_permitted = num(proc.cap_permitted)
        proc.cap_inheritable = num(proc.cap_inheritable)
        proc.pidns, proc.mntns = num(proc.pidns), num(proc.mntns)
        proc.argv = self.argv(proc.argv) if proc.argv else NO_ITEMS
        proc.env = self.env(proc.env)

    def _cap(self, items: list[str], limit: int) -> list[str]:
        size = LIST_BYTES + ITEM_BYTES * len(items) + sum(map(len, items))
        if size <= limit:
            return items
        self.capped += 1
        size = LIST_BYTES
        for i, item in enumerate(items):
            size += ITEM_BYTES + len(item)
            if size > limit:
                if i:
                    return items[:i]
                # one item alone is over the cap: keep its beginning (argv[0] is proc.exe)
                return [item[: max(0, limit - LIST_BYTES - ITEM_BYTES)]]
        return items  # pragma: no cover - the sum above said otherwise
