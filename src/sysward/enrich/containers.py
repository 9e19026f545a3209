"""Container identity: which container (if any) a cgroup path belongs to, and its name/image.

Container runtimes put every container in a cgroup whose path carries the container's 64-hex
id, in one of a few spellings:

- docker, cgroupfs driver:       ``/docker/<id>``
- docker, systemd driver:        ``/system.slice/docker-<id>.scope``
- Kubernetes, cgroupfs driver:   ``/kubepods/besteffort/pod<uid>/<id>``
- containerd (CRI), systemd:     ``/kubepods.slice/.../cri-containerd-<id>.scope``
- CRI-O:                         ``/kubepods.slice/.../crio-<id>.scope``
- podman:                        ``/machine.slice/libpod-<id>.scope`` (``.../container`` below
  it when the container has its own cgroup namespace), ``/libpod_parent/libpod-<id>``

Like Falco, sysward names a container by the first 12 hex digits of its id and calls
everything else ``host``.  Monitor processes (``crio-conmon-<id>.scope``,
``libpod-conmon-<id>.scope``) run on the host side and stay ``host``.

The kernel reports a cgroup v2 *id*; on kernfs that id is the inode number of the cgroup's
directory below the cgroup2 mount, so :class:`CgroupResolver` maps ids to paths by stat-ing
directories, with a cache.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from sysward.events.model import ContainerInfo, ContainerMeta, Event

if TYPE_CHECKING:
    from sysward.enrich.cri.watcher import CriWatcher

HOST = "host"
SHORT_ID_LEN = 12

# One path component that names a container.  The runtime prefix (docker-, cri-containerd-,
# crio-, libpod-) is optional because the cgroupfs drivers use the bare id as directory name.
_COMPONENT = re.compile(
    r"^(?:(?P<prefix>docker|cri-containerd|crio|libpod|containerd)-)?(?P<id>[0-9a-f]{64})"
    r"(?:\.scope)?$"
)
_PREFIX_RUNTIME = {
    "docker": "docker",
    "cri-containerd": "containerd",
    "containerd": "containerd",
    "crio": "cri-o",
    "libpod": "podman",
}


@dataclass(frozen=True, slots=True)
class ContainerRef:
    runtime: str  # docker | containerd | cri-o | podman | kubernetes | unknown
    full_id: str  # 64 hex digits

    @property
    def short_id(self) -> str:
        return self.full_id[:SHORT_ID_LEN]


def parse_cgroup_path(path: str) -> ContainerRef | None:
    """The container a cgroup path belongs to, or None for a host cgroup.

    The innermost matching component wins: nested runtimes (a container inside a pod inside
    a VM's docker) report the container the process actually runs in.
    """
    if not path or path == "/":
        return None
    parts = path.split("/")
    for i in range(len(parts) - 1, -1, -1):
        m = _COMPONENT.match(parts[i])
        if m is None:
            continue
        prefix = m.group("prefix")
        if prefix is not None:
            runtime = _PREFIX_RUNTIME[prefix]
        elif "kubepods" in path:
            runtime = "kubernetes"
        elif i > 0 and parts[i - 1] == "docker":
            runtime = "docker"
        else:
            runtime = "unknown"
        return ContainerRef(runtime, m.group("id"))
    return None


def container_id(path: str) -> str:
    """12-hex short id of the container a cgroup path belongs to, or ``"host"``."""
    ref = parse_cgroup_path(path)
    return ref.short_id if ref is not None else HOST


def pick_cgroup(text: str) -> str:
    """Choose the path to report from the text of /proc/<pid>/cgroup.

    A path that names a container wins (on hybrid hosts the runtime may have placed the
    process in a v1 hierarchy only); otherwise the unified (v2, ``0::``) path; otherwise the
    first path of a v1 hierarchy.
    """
    v2 = ""
    first = ""
    for line in text.splitlines():
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path:
            continue
        if parse_cgroup_path(path) is not None:
            return path
        if controllers == "" and not v2:
            v2 = path
        elif not first:
            first = path
    return v2 or first


def find_cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Mount point of the cgroup v2 hierarchy, from mountinfo; None when not mounted."""
    try:
        text = Path(mountinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        # "<id> <parent> <maj:min> <root> <mountpoint> <opts> [optional...] - <fstype> ..."
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        if right.split(" ", 1)[0] == "cgroup2":
            fields = left.split(" ")
            if len(fields) >= 5 and fields[3] == "/":
                return fields[4].replace("\\040", " ")
    return None


class CgroupResolver:
    """cgroup v2 id -> cgroup path (relative to the v2 mount, starting with ``/``).

    Lookup order on a miss: the process's own /proc/<pid>/cgroup (one read and one stat,
    verified against the id), then a rescan of the whole v2 tree — at most once per
    ``rescan_interval_s`` so a stream of unknown ids cannot turn into a stream of tree walks.
    The cache holds at most ``max_entries`` ids; when full it is cleared and rebuilt lazily
    (cgroups come and go with containers, so old ids are mostly dead anyway).
    """

    def __init__(
        self,
        mount: str | None,
        *,
        proc_root: str = "/proc",
        max_entries: int = 16384,
        rescan_interval_s: float = 1.0,
    ) -> None:
        self.mount = mount
        self.proc_root = proc_root
        self.max_entries = max_entries
        self.rescan_interval_s = rescan_interval_s
        self._paths: dict[int, str] = {}
        self._last_scan = -1e18
        self.hits = 0
        self.misses = 0  # ids that no method could resolve
        self.rescans = 0
        self.clears = 0

    def resolve(self, cgroup_id: int, pid: int = 0) -> str | None:
        path = self._paths.get(cgroup_id)
        if path is not None:
            self.hits += 1
            return path
        if self.mount is None or cgroup_id <= 0:
            self.misses += 1
            return None
        if pid > 0:
            path = self._from_proc(cgroup_id, pid)
            if path is not None:
                return path
        now = time.monotonic()
        if now - self._last_scan >= self.rescan_interval_s:
            self._last_scan = now
            self.rescan()
            path = self._paths.get(cgroup_id)
            if path is not None:
                return path
        self.misses += 1
        return None

    def forget(self, cgroup_id: int) -> None:
        """Drop one id (its cgroup is gone); safe from another thread."""
        self._paths.pop(cgroup_id, None)

    def _remember(self, cgroup_id: int, path: str) -> None:
        if len(self._paths) >= self.max_entries:
            self._paths.clear()
            self.clears += 1
        self._paths[cgroup_id] = path

    def _from_proc(self, cgroup_id: int, pid: int) -> str | None:
        assert self.mount is not None
        try:
            with open(f"{self.proc_root}/{pid}/cgroup", "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("0::"):
                path = line[3:]
                try:
                    ino = os.stat(self.mount + path).st_ino
                except OSError:
                    return None
                if ino == cgroup_id:
                    self._remember(cgroup_id, path)
                    return path
                return None
        return None

    def rescan(self) -> int:
        """Walk the v2 tree and cache every directory's id; returns the number found."""
        if self.mount is None:
            return 0
        self.rescans += 1
        found: dict[int, str] = {}
        mount = self.mount
        try:
            found[os.stat(mount).st_ino] = "/"
        except OSError:
            return 0
        stack = [(mount, "")]
        while stack:
            abs_dir, rel = stack.pop()
            try:
                entries = os.scandir(abs_dir)
            except OSError:
                continue  # removed while we walked
            with entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    child_rel = f"{rel}/{entry.name}"
                    try:
                        found[entry.inode()] = child_rel
                    except OSError:
                        continue
                    stack.append((entry.path, child_rel))
        if len(self._paths) + len(found) > self.max_entries:
            self._paths.clear()
            self.clears += 1
        for ino, path in found.items():
            if len(self._paths) >= self.max_entries:
                break
            self._paths[ino] = path
        return len(found)


class ContainerMetadata:
    """Container name, image, labels and pod of a container, shared by all its processes.

    Docker's and podman's come from their state files (one small read:
    ``<docker_root>/containers/<id>/config.v2.json``, podman's
    ``<podman_root>/overlay-containers/containers.json``).  The others (containerd, CRI-O:
    Kubernetes) come from the runtime's CRI socket through ``cri`` (a CriWatcher), which
    answers later, from its own thread: until then the record's ``meta`` is None.  Without a
    CRI runtime such containers get an empty record.  At most ``max_entries`` file-based
    records are kept (the watcher bounds its own).
    """

    def __init__(
        self,
        *,
        docker_root: str = "/var/lib/docker",
        podman_root: str = "/var/lib/containers/storage",
        max_entries: int = 4096,
        cri: CriWatcher | None = None,
    ) -> None:
        self.docker_root = docker_root
        self.podman_root = podman_root
        self.max_entries = max_entries
        self.cri = cri
        self._cache: dict[str, ContainerInfo] = {}
        self.lookups = 0
        self.filtered = 0  # events dropped before the rules: their container is out of scope
        self.alerts_before_meta = 0  # alerts sent while their container's metadata was unknown

    def get(self, ref: ContainerRef, cgroup_id: int = 0) -> ContainerInfo:
        info = self._cache.get(ref.full_id)
        if info is not None:
            return info
        cri = self.cri
        if cri is not None:
            known = cri.infos.get(ref.full_id)
            if known is not None:
                return known
        self.lookups += 1
        meta = self._docker(ref.full_id) or self._podman(ref.full_id)
        if meta is None and cri is not None:
            return cri.info(ref.full_id, cri.runtime, cgroup_id)
        info = ContainerInfo(ref.full_id, ref.runtime, meta or ContainerMeta())
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[ref.full_id] = info
        return info

    def out_of_scope(self, event: Event) -> bool:
        """True (and counted) when the event's container is outside filters.namespaces /
        filters.labels; its cgroup id then goes to the kernel so its next events stop there."""
        proc = event.proc
        info = proc.container if proc is not None else None
        meta = info.meta if info is not None else None
        if meta is None or not meta.excluded:
            return False
        self.filtered += 1
        if self.cri is not None and event.cgroup_id:
            self.cri.exclude_cgroup(info, event.cgroup_id)  # type: ignore[arg-type]
        return True

    def note_alert(self, event: Event) -> None:
        """Count an alert that goes out before its container's metadata is known."""
        proc = event.proc
        info = proc.container if proc is not None else None
        if info is not None and info.meta is None:
            self.alerts_before_meta += 1

    def stats(self) -> dict[str, int]:
        out = {
            "sysward_enrich_container_lookups_total": self.lookups,
            "sysward_enrich_scope_filtered_total": self.filtered,
            "sysward_enrich_alerts_without_container_meta_total": self.alerts_before_meta,
        }
        if self.cri is not None:
            out.update(self.cri.stats())
        return out

    def _docker(self, full_id: str) -> ContainerMeta | None:
        try:
            data = orjson.loads(
                Path(self.docker_root, "containers", full_id, "config.v2.json").read_bytes()
            )
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        name = str(data.get("Name") or "").lstrip("/")
        config = data.get("Config")
        if not isinstance(config, dict):
            config = {}
        image = str(config.get("Image") or data.get("Image") or "")
        return ContainerMeta(name=name, image=image)

    def _podman(self, full_id: str) -> ContainerMeta | None:
        try:
            data = orjson.loads(
                Path(self.podman_root, "overlay-containers", "containers.json").read_bytes()
            )
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(data, list):
            return None
        for item in data:
            if not isinstance(item, dict) or item.get("id") != full_id:
                continue
            names = item.get("names") or [""]
            image = ""
            metadata = item.get("metadata")
            if isinstance(metadata, str):
                try:
                    meta = orjson.loads(metadata)
                    image = str(meta.get("image-name") or "") if isinstance(meta, dict) else ""
                except orjson.JSONDecodeError:
                    pass
            return ContainerMeta(name=str(names[0]), image=image or str(item.get("image", "")))
        return None
