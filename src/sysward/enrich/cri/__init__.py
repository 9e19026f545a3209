"""Container and pod metadata from the node's CRI runtime (containerd, CRI-O).

``client`` speaks the runtime.v1 RuntimeService (messages generated from ``runtime_v1.proto``
into ``runtime_v1_pb2``), ``watcher`` is the thread that asks it and keeps the cache.  gRPC
is imported only when a runtime socket exists: it costs ~18 MB of memory.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from sysward.config import CriConfig, FiltersConfig
from sysward.enrich.scope import Scope

if TYPE_CHECKING:
    from sysward.enrich.cri.watcher import CriWatcher

__all__ = ["open_watcher", "socket_paths"]


def socket_paths(cri: CriConfig) -> list[str]:
    """The configured sockets as seen from here (below ``cri.host_root``)."""
    root = cri.host_root.rstrip("/")
    return [root + s for s in cri.sockets]


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def open_watcher(cri: CriConfig, filters: FiltersConfig,
                 cgroup_mount: str | None) -> tuple[CriWatcher | None, str]:
    """A watcher on the first CRI runtime of ``cri.sockets`` that answers (not started), and
    one line saying what was found, for the start-up message and ``sysward doctor``."""
    scope = Scope.from_config(filters)  # a bad selector is a config error, runtime or not
    if not cri.enabled:
        return None, "CRI: off (cri.enabled is false)"
    paths = socket_paths(cri)
    if not any(_is_socket(p) for p in paths):
        return None, f"CRI: no runtime socket at {', '.join(paths) or '(none configured)'}"
    from sysward.enrich.cri.client import probe
    from sysward.enrich.cri.watcher import CriWatcher

    found = probe(paths, cri.timeout_s)
    if found is None:
        return None, f"CRI: no runtime answered on {', '.join(p for p in paths if _is_socket(p))}"
    client, version = found
    watcher = CriWatcher(client, version, scope, max_containers=cri.max_containers,
                         refresh_s=cri.refresh_s, cgroup_mount=cgroup_mount)
    return watcher, f"CRI: {version.describe()}"
