"""The bench container: a real cgroup named like a docker scope, plus fresh namespaces.

For sysward (as for Falco) a process is "in a container" when its cgroup path names one, e.g.
``.../docker-<64 hex>.scope``; container runtimes also give it its own mount, UTS and IPC
namespaces.  The bench builds exactly that around a worker process, so the event generator's
container-only actions run in a container without docker: the cgroup is created in the cgroup
v2 hierarchy (where the kernel reports the cgroup id of every event), the worker joins it
before it execs, and ``unshare`` gives it the namespaces.  The pid namespace is left shared so
the pids the worker reports are the ones the alerts carry.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

from sysward.enrich.containers import find_cgroup2_mount
from sysward.errors import SyswardError


class BenchContainer:
    """``with BenchContainer() as c: Popen(c.wrap(argv), preexec_fn=c.join)``."""

    def __init__(self) -> None:
        mount = find_cgroup2_mount()
        if mount is None:
            raise SyswardError(
                "no cgroup v2 hierarchy is mounted, so the bench cannot build its container; "
                "mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) or skip the "
                "container actions."
            )
        if shutil.which("unshare") is None:
            raise SyswardError("the bench container needs unshare (util-linux); install it.")
        self.full_id = secrets.token_hex(32)
        self.parent = Path(mount) / f"sysward-bench-{os.getpid()}"
        self.path = self.parent / f"docker-{self.full_id}.scope"

    @property
    def short_id(self) -> str:
        return self.full_id[:12]

    def __enter__(self) -> BenchContainer:
        try:
            self.path.mkdir(parents=True)
        except OSError as exc:
            raise SyswardError(f"cannot create the bench cgroup {self.path}: {exc.strerror}; "
                               "run the bench as root.") from None
        return self

    def join(self) -> None:
        """Run in the child before exec: move it into the container's cgroup."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    @staticmethod
    def wrap(argv: list[str]) -> list[str]:
        return ["unshare", "--mount", "--uts", "--ipc", "--", *argv]

    def __exit__(self, *exc: object) -> None:
        # Every member has exited by now (the workers are waited for); empty cgroups can go.
        for d in (self.path, self.parent):
            with contextlib.suppress(OSError):
                d.rmdir()
