"""The CRI lookup thread: fills in container and pod metadata, off the rule worker's path.

The worker (enrichment) meets a container id it has not seen and calls :meth:`request`: that
appends to a bounded queue and returns.  This thread takes the request, asks the runtime
(ContainerStatus, then PodSandboxStatus once per pod) and stores the answer in the container's
shared ``ContainerInfo`` with one reference store.  Events of that container that the worker
handles before the answer get what is known by then; nothing waits.

Every ``refresh_s`` the thread lists the runtime's pods and containers: containers that are
gone (removed, or exited) leave the cache, the pod cache and the kernel's cgroup map; requests
the bounded queue had to refuse, or that failed, are retried there too.

Scoping: when a container's metadata puts it out of scope, its cgroup id goes into the
kernel's ``scope_cgroups`` map (through ``kernel_map``), so its events stop in the kernel;
until then the worker drops them before the rules (``Enricher.out_of_scope``).
"""

from __future__ import annotations

import collections
import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from sysward.enrich.cri import runtime_v1_pb2 as pb
from sysward.enrich.cri.client import (
    CriClient,
    CriError,
    RuntimeVersion,
    cgroup_id_of,
    cgroups_path,
    describe,
    describe_sandbox,
    runtime_name,
    sandbox_of,
)
from sysward.enrich.scope import Scope
from sysward.events.model import ContainerInfo, ContainerMeta

log = logging.getLogger(__name__)

_U64 = struct.Struct("<Q")
_LIVE_STATES = (pb.CONTAINER_CREATED, pb.CONTAINER_RUNNING)


class CgroupMap(Protocol):
    """The kernel map of out-of-scope cgroup ids (a BpfMap, or a dict-like double in
    tests that do not load BPF)."""

    def update(self, key: bytes, value: bytes, flags: int = ...) -> None: ...
    def delete(self, key: bytes) -> bool: ...


class CriWatcher:
    def __init__(self, client: CriClient, version: RuntimeVersion, scope: Scope | None = None,
                 *, max_containers: int = 4096, max_pending: int = 1024,
                 refresh_s: float = 2.0, cgroup_mount: str | None = None) -> None:
        self.client = client
        self.version = version
        self.runtime = runtime_name(version.name)
        self.cgroup_mount = cgroup_mount
        self.scope = scope or Scope()
        self.max_containers = max_containers
        self.refresh_s = refresh_s
        #: full container id -> the shared record (the worker reads, this thread writes)
        self.infos: dict[str, ContainerInfo] = {}
        self.pods: dict[str, pb.PodSandboxStatus] = {}
        #: full container id -> cgroup ids of it that are in the kernel map
        self.kernel_cgroups: dict[str, set[int]] = {}
        #: full container id -> cgroup ids seen for it (forgotten with the container)
        self.cgroups: dict[str, set[int]] = {}
        self._pending: collections.deque[tuple[ContainerInfo, int]] = collections.deque()
        self._max_pending = max_pending
        self._asked: set[tuple[str, int]] = set()  # (container, cgroup id) sent to the kernel
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # kernel map and kernel_cgroups
        self._kernel_map: CgroupMap | None = None
        self.on_forget: Callable[[int], None] | None = None  # cgroup id left the node
        # counters (read by the telemetry thread)
        self.requests = 0
        self.refused = 0  # the pending queue was full: retried at the next refresh
        self.resolved = 0
        self.failures = 0
        self.refreshes = 0
        self.removed = 0
        self.kernel_adds = 0
        self.kernel_removes = 0
        self.last_error = ""

    # -- the worker's side (never blocks) --------------------------------------------------
    def info(self, full_id: str, runtime: str, cgroup_id: int = 0) -> ContainerInfo:
        """The shared record of a container; asks for its metadata when it is new."""
        info = self.infos.get(full_id)
        if info is None:
            if len(self.infos) >= self.max_containers:
                self._evict()
            info = ContainerInfo(full_id, runtime)
            self.infos[full_id] = info
            self.request(info, cgroup_id)
        return info

    def request(self, info: ContainerInfo, cgroup_id: int = 0) -> None:
        self.requests += 1
        if len(self._pending) >= self._max_pending:
            self.refused += 1
            return
        self._pending.append((info, cgroup_id))
        self._wake.set()

    def exclude_cgroup(self, info: ContainerInfo, cgroup_id: int) -> None:
        """An out-of-scope container showed a cgroup id the kernel does not know yet."""
        if (cgroup_id and (info.id, cgroup_id) not in self._asked
                and cgroup_id not in self.kernel_cgroups.get(info.id, ())):
            if len(self._asked) > self._max_pending:
                self._asked.clear()
            self._asked.add((info.id, cgroup_id))
            self.request(info, cgroup_id)

    def _evict(self) -> None:
        # Oldest first (dicts keep insertion order); a still-running container comes back on
        # its next event, at the cost of one lookup.
        for full_id in list(self.infos)[: max(1, self.max_containers // 8)]:
            self.infos.pop(full_id, None)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sysward-cri", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(2 * self.client.timeout_s + 1.0)
            self._thread = None
        self.client.close()

    def set_kernel_map(self, kernel_map: CgroupMap | None) -> None:
        """Use this map (a new sensor's) from now on, with every id known so far."""
        with self._lock:
            self._kernel_map = kernel_map
            if kernel_map is None:
                return
            for ids in self.kernel_cgroups.values():
                for cg in ids:
                    kernel_map.update(_U64.pack(cg), b"\1")

    def set_scope(self, scope: Scope) -> None:
        """A reload changed the scope: decide again for every known container."""
        self.scope = scope
        for info in list(self.infos.values()):
            meta = info.meta
            if meta is not None:
                self._store(info, meta, 0)

    # -- this thread --------------------------------------------------------------------------
    def _run(self) -> None:
        next_refresh = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_refresh:
                self.refresh()
                next_refresh = time.monotonic() + self.refresh_s
            self._wake.wait(max(0.0, next_refresh - time.monotonic()))
            self._wake.clear()
            self.drain()

    def drain(self) -> int:
        """Answer the queued requests; returns how many were handled."""
        n = 0
        while self._pending and not self._stop.is_set():
            info, cgroup_id = self._pending.popleft()
            self.resolve(info, cgroup_id)
            n += 1
        return n

    def resolve(self, info: ContainerInfo, cgroup_id: int = 0) -> bool:
        """Ask the runtime about one container; True when its metadata is known."""
        meta = info.meta
        if meta is None:
            try:
                status = self.client.container_status(info.id)
            except CriError as exc:
                # A pod's sandbox (pause) container is no CRI container: its id is the pod's.
                pod = self._pod(info.id, quiet=True)
                if pod is None:
                    self.failures += 1
                    self.last_error = str(exc)
                    return False  # not a CRI container, or gone; the refresh retries live ones
                meta = describe_sandbox(pod)
            else:
                pod = self._pod(sandbox_of(status))
                meta = describe(status, pod)
                if not cgroup_id and self.cgroup_mount:
                    cgroup_id = cgroup_id_of(self.cgroup_mount, cgroups_path(status))
            self.resolved += 1
        self._store(info, meta, cgroup_id)
        return True

    def _pod(self, pod_id: str, quiet: bool = False) -> pb.PodSandboxStatus | None:
        if not pod_id:
            return None
        pod = self.pods.get(pod_id)
        if pod is None:
            try:
                pod = self.client.pod_status(pod_id)
            except CriError as exc:
                if not quiet:
                    self.failures += 1
                    self.last_error = str(exc)
                return None
            self.pods[pod_id] = pod
        return pod

    def _store(self, info: ContainerInfo, meta: ContainerMeta, cgroup_id: int) -> None:
        excluded = self.scope.excluded(meta.pod_namespace, meta.pod_labels, meta.labels)
        if excluded != meta.excluded:
            meta = _with_excluded(meta, excluded)
        info.meta = meta  # one store: the worker sees the old record or the new one
        if cgroup_id:
            self.cgroups.setdefault(info.id, set()).add(cgroup_id)
        if excluded and cgroup_id:
            self._kernel_add(info.id, cgroup_id)
            self._asked.discard((info.id, cgroup_id))
        elif not excluded and info.id in self.kernel_cgroups:
            self._kernel_drop(info.id)

    def _kernel_add(self, full_id: str, cgroup_id: int) -> None:
        with self._lock:
            ids = self.kernel_cgroups.setdefault(full_id, set())
            if cgroup_id in ids:
                return
            ids.add(cgroup_id)
            if self._kernel_map is not None:
                self._kernel_map.update(_U64.pack(cgroup_id), b"\1")
            self.kernel_adds += 1

    def _kernel_drop(self, full_id: str) -> None:
        with self._lock:
            ids = self.kernel_cgroups.pop(full_id, set())
            for cg in ids:
                if self._kernel_map is not None:
                    self._kernel_map.delete(_U64.pack(cg))
                self.kernel_removes += 1

    def refresh(self) -> None:
        """List the runtime's containers and pods: learn the new ones (so an out-of-scope
        container's cgroup is in the kernel map before its first event, when the refresh
        comes first), forget what is gone, retry what failed."""
        try:
            containers = self.client.list_containers()
            pods = self.client.list_pods()
        except CriError as exc:
            self.failures += 1
            self.last_error = str(exc)
            return
        self.refreshes += 1
        live = [c.id for c in containers if c.state in _LIVE_STATES]
        live += [p.id for p in pods if p.state == pb.SANDBOX_READY]
        alive = set(live)
        for full_id in [i for i in list(self.infos) if i not in alive]:
            self.infos.pop(full_id, None)
            self.removed += 1
        for full_id in [i for i in list(self.kernel_cgroups) if i not in alive]:
            self._kernel_drop(full_id)
        for full_id in [i for i in list(self.cgroups) if i not in alive]:
            for cg in self.cgroups.pop(full_id):
                if self.on_forget is not None:
                    self.on_forget(cg)
        pod_ids = {p.id for p in pods}
        for pod_id in [p for p in list(self.pods) if p not in pod_ids]:
            del self.pods[pod_id]
        for full_id in live:
            if self._stop.is_set():
                return
            info = self.infos.get(full_id)
            if info is None and len(self.infos) < self.max_containers:
                info = self.infos.setdefault(full_id, ContainerInfo(full_id, self.runtime))
            if info is not None and info.meta is None:
                self.resolve(info)

    def stats(self) -> dict[str, int]:
        return {
            "sysward_cri_requests_total": self.requests,
            "sysward_cri_requests_refused_total": self.refused,
            "sysward_cri_resolved_total": self.resolved,
            "sysward_cri_failures_total": self.failures,
            "sysward_cri_refreshes_total": self.refreshes,
            "sysward_cri_removed_total": self.removed,
            "sysward_cri_containers": len(self.infos),
            "sysward_cri_pods": len(self.pods),
            "sysward_cri_kernel_cgroups": self.kernel_cgroup_count(),
        }

    def kernel_cgroup_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self.kernel_cgroups.values())


def _with_excluded(meta: ContainerMeta, excluded: bool) -> ContainerMeta:
    return replace(meta, excluded=excluded)

