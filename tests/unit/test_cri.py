"""The CRI client and its lookup thread against a real gRPC server on a unix socket.

The server is an in-memory runtime (pods and containers in dicts) that speaks runtime.v1
through grpcio like containerd does; the kernel tests (tests/kernel/test_cri_containerd.py)
run the same code against a real containerd.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest

from sysward.config import load_config
from sysward.enrich.containers import ContainerMetadata, ContainerRef
from sysward.enrich.cri import open_watcher
from sysward.enrich.cri import runtime_v1_pb2 as pb
from sysward.enrich.cri.client import CriClient, CriError, describe, probe, systemd_to_path
from sysward.enrich.cri.watcher import CriWatcher
from sysward.enrich.scope import Scope
from sysward.errors import ConfigError
from sysward.events.model import Event, Process, process_from_dict, process_to_dict
from sysward.metrics import samples_from_stats
from sysward.rules.fieldsets.container import container_alert_fields

REPO = Path(__file__).resolve().parents[2]
CID = "c" * 64
POD = "p" * 64


class Runtime:
    """An in-memory CRI runtime: what containerd would answer for these pods/containers."""

    def __init__(self) -> None:
        self.pods: dict[str, pb.PodSandboxStatus] = {}
        self.containers: dict[str, tuple[pb.ContainerStatus, str]] = {}  # id -> (status, pod)
        self.hold = threading.Event()
        self.hold.set()
        self.calls: list[str] = []

    def add_pod(self, pod_id: str, name: str, namespace: str, labels: dict[str, str]) -> None:
        self.pods[pod_id] = pb.PodSandboxStatus(
            id=pod_id, metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}",
                                                      namespace=namespace),
            state=pb.SANDBOX_READY, labels=labels, created_at=5)

    def add_container(self, cid: str, pod_id: str, name: str, image: str,
                      labels: dict[str, str] | None = None) -> None:
        self.containers[cid] = (pb.ContainerStatus(
            id=cid, metadata=pb.ContainerMetadata(name=name), state=pb.CONTAINER_RUNNING,
            image=pb.ImageSpec(image=image), image_ref="sha256:" + "a" * 64,
            labels=labels or {}, started_at=1_700_000_000_000_000_000, created_at=7), pod_id)

    # -- handlers --
    def Version(self, req: pb.VersionRequest, ctx: Any) -> pb.VersionResponse:  # noqa: N802
        return pb.VersionResponse(version="0.1.0", runtime_name="containerd",
                                  runtime_version="1.6.20", runtime_api_version="v1")

    def ContainerStatus(self, req: pb.ContainerStatusRequest,  # noqa: N802
                        ctx: Any) -> pb.ContainerStatusResponse:
        self.calls.append("ContainerStatus")
        self.hold.wait(10)
        if req.container_id not in self.containers:
            ctx.abort(grpc.StatusCode.NOT_FOUND, "container not found")
        status, pod_id = self.containers[req.container_id]
        info = {"sandboxID": pod_id, "pid": 1,
                "config": {"linux": {"security_context": {"privileged": True}}},
                "runtimeSpec": {"linux": {"cgroupsPath": f"/kubepods/pod1/{status.id}"}}}
        return pb.ContainerStatusResponse(status=status, info={"info": orjson.dumps(info).decode()})

    def PodSandboxStatus(self, req: pb.PodSandboxStatusRequest,  # noqa: N802
                         ctx: Any) -> pb.PodSandboxStatusResponse:
        self.calls.append("PodSandboxStatus")
        if req.pod_sandbox_id not in self.pods:
            ctx.abort(grpc.StatusCode.NOT_FOUND, "pod not found")
        return pb.PodSandboxStatusResponse(status=self.pods[req.pod_sandbox_id])

    def ListContainers(self, req: pb.ListContainersRequest,  # noqa: N802
                       ctx: Any) -> pb.ListContainersResponse:
        return pb.ListContainersResponse(containers=[
            pb.Container(id=c, pod_sandbox_id=p, state=s.state)
            for c, (s, p) in self.containers.items()])

    def ListPodSandbox(self, req: pb.ListPodSandboxRequest,  # noqa: N802
                       ctx: Any) -> pb.ListPodSandboxResponse:
        return pb.ListPodSandboxResponse(items=[
            pb.PodSandbox(id=p.id, metadata=p.metadata, state=p.state, labels=p.labels)
            for p in self.pods.values()])


_REQUESTS: dict[str, Any] = {
    "Version": pb.VersionRequest, "ContainerStatus": pb.ContainerStatusRequest,
    "PodSandboxStatus": pb.PodSandboxStatusRequest, "ListContainers": pb.ListContainersRequest,
    "ListPodSandbox": pb.ListPodSandboxRequest}


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[tuple[Runtime, str]]:
    rt = Runtime()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        name: grpc.unary_unary_rpc_method_handler(
        getattr(rt, name), request_deserializer=req.FromString,
        response_serializer=lambda m: m.SerializeToString()) for name, req in _REQUESTS.items()}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("runtime.v1.RuntimeService", handlers),))
    sock = str(tmp_path / "cri.sock")
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    yield rt, sock
    rt.hold.set()
    server.stop(0)


class FakeMap:
    """Stands in for the BPF map's update/delete (the kernel tests use the real one)."""

    def __init__(self) -> None:
        self.keys: set[bytes] = set()

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        self.keys.add(key)

    def delete(self, key: bytes) -> bool:
        present = key in self.keys
        self.keys.discard(key)
        return present


def watcher_on(sock: str, scope: Scope | None = None) -> CriWatcher:
    found = probe(["/nonexistent.sock", sock], timeout_s=5)
    assert found is not None
    client, version = found
    return CriWatcher(client, version, scope, refresh_s=3600)


def test_generated_module_is_current() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_cri.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_probe_and_describe(runtime: tuple[Runtime, str]) -> None:
    rt, sock = runtime
    rt.add_pod(POD, "web-1", "team-a", {"app": "web"})
    rt.add_container(CID, POD, "nginx", "docker.io/library/nginx:1.27", {"role": "front"})
    w = watcher_on(sock)
    assert w.version.describe() == f"containerd 1.6.20 (CRI v1) on {sock}"
    status = w.client.container_status(CID)
    meta = describe(status, w.client.pod_status(POD))
    assert (meta.name, meta.image, meta.image_id) == ("nginx", "docker.io/library/nginx:1.27",
                                                      "a" * 64)
    assert (meta.pod_name, meta.pod_namespace, meta.pod_uid) == ("web-1", "team-a", "uid-web-1")
    assert dict(meta.pod_labels) == {"app": "web"} and dict(meta.labels) == {"role": "front"}
    assert meta.privileged is True and meta.start_ts == 1_700_000_000_000_000_000
    with pytest.raises(CriError, match="NOT_FOUND"):
        w.client.container_status("d" * 64)
    w.close()


def test_worker_never_waits_and_fields_follow(runtime: tuple[Runtime, str]) -> None:
    rt, sock = runtime
    rt.add_pod(POD, "web-1", "team-a", {"app": "web", "tier": "front"})
    rt.add_container(CID, POD, "nginx", "docker.io/library/nginx:1.27")
    w = watcher_on(sock)
    containers = ContainerMetadata(docker_root="/nonexistent", podman_root="/nonexistent",
                                   cri=w)
    rt.hold.clear()  # the runtime hangs on ContainerStatus
    w.start()
    info = containers.get(ContainerRef("kubernetes", CID), cgroup_id=42)
    assert info.meta is None  # returned at once, nothing known yet
    proc = Process(pid=10, container_id=CID[:12], container=info)
    ev = Event(ts=1, type="openat", pid=10, proc=proc)
    fields: dict[str, Any] = {}
    container_alert_fields(ev, fields)
    assert fields["k8s.pod.name"] is None and fields["container.name"] is None
    containers.note_alert(ev)
    assert containers.alerts_before_meta == 1
    rt.hold.set()
    for _ in range(200):
        if info.meta is not None:
            break
        threading.Event().wait(0.01)
    assert info.meta is not None
    fields = {}
    container_alert_fields(ev, fields)
    assert fields == {"container.name": "nginx", "container.image.repository":
                      "docker.io/library/nginx", "container.image.tag": "1.27",
                      "k8s.ns.name": "team-a", "k8s.pod.name": "web-1",
                      "k8s.pod.uid": "uid-web-1", "k8s.pod.labels": "app:web,tier:front"}
    containers.note_alert(ev)
    assert containers.alerts_before_meta == 1
    # the same record for every later process of that container, and one pod lookup
    assert containers.get(ContainerRef("kubernetes", CID)) is info
    assert rt.calls.count("PodSandboxStatus") == 1
    # a capture keeps what was known
    again = process_from_dict(orjson.loads(orjson.dumps(process_to_dict(proc))))
    assert again.container is not None and again.container.meta == info.meta
    w.close()


def test_scope_kernel_map_and_removal(runtime: tuple[Runtime, str], tmp_path: Path) -> None:
    rt, sock = runtime
    rt.add_pod(POD, "job-1", "kube-system", {"app": "dns"})
    rt.add_container(CID, POD, "coredns", "registry.k8s.io/coredns:1.11")
    other = "e" * 64
    rt.add_pod("q" * 64, "web-1", "team-a", {"app": "web"})
    rt.add_container(other, "q" * 64, "nginx", "nginx:1.27")
    w = watcher_on(sock, Scope(exclude_namespaces=["kube-*"]))
    kmap = FakeMap()
    w.set_kernel_map(kmap)
    forgotten: list[int] = []
    w.on_forget = forgotten.append
    containers = ContainerMetadata(docker_root="/nonexistent", podman_root="/nonexistent",
                                   cri=w)
    info = containers.get(ContainerRef("kubernetes", CID), cgroup_id=4242)
    kept = containers.get(ContainerRef("kubernetes", other), cgroup_id=77)
    assert w.drain() == 2
    assert info.meta is not None and info.meta.excluded
    assert kept.meta is not None and not kept.meta.excluded
    assert kmap.keys == {(4242).to_bytes(8, "little")}
    ev = Event(ts=1, type="openat", pid=1, cgroup_id=4343,
               proc=Process(pid=1, container_id=CID[:12], container=info))
    assert containers.out_of_scope(ev) and containers.filtered == 1
    assert containers.out_of_scope(ev)  # asked once per (container, cgroup id)
    assert w.drain() == 1  # the new cgroup id the worker reported
    assert (4343).to_bytes(8, "little") in kmap.keys
    assert not containers.out_of_scope(
        Event(ts=1, type="openat", proc=Process(pid=2, container_id=other[:12], container=kept)))
    # the pod goes away: nothing left in the caches or the map
    del rt.containers[CID]
    del rt.pods[POD]
    w.refresh()
    assert CID not in w.infos and POD not in w.pods and not kmap.keys
    assert sorted(forgotten) == [4242, 4343]
    assert w.stats()["sysward_cri_kernel_cgroups"] == 0
    # every counter is a registered metric (the telemetry serves only those)
    names = {x.name for x in samples_from_stats(containers.stats())}
    assert {"sysward_cri_containers", "sysward_enrich_scope_filtered_total"} <= names
    assert other in w.infos  # the other pod stays
    w.close()


def test_refresh_learns_running_containers_first(runtime: tuple[Runtime, str],
                                                 tmp_path: Path) -> None:
    rt, sock = runtime
    rt.add_pod(POD, "job-1", "skip", {})
    rt.add_container(CID, POD, "worker", "busybox:1")
    cg = tmp_path / "cg" / "kubepods" / "pod1" / CID
    cg.mkdir(parents=True)
    w = watcher_on(sock, Scope(exclude_namespaces=["skip"]))
    w.cgroup_mount = str(tmp_path / "cg")
    kmap = FakeMap()
    w.set_kernel_map(kmap)
    w.refresh()  # before any event: the cgroup id comes from the runtime's OCI spec
    assert w.infos[CID].meta is not None
    assert kmap.keys == {cg.stat().st_ino.to_bytes(8, "little")}
    w.close()


def test_open_watcher_reports_what_it_found(runtime: tuple[Runtime, str],
                                            tmp_path: Path) -> None:
    _, sock = runtime
    cfg = load_config("/dev/null", {"cri.sockets": str(tmp_path / "none.sock")})
    w, status = open_watcher(cfg.cri, cfg.filters, None)
    assert w is None and status.startswith("CRI: no runtime socket at")
    cfg = load_config("/dev/null", {"cri.sockets": sock})
    w, status = open_watcher(cfg.cri, cfg.filters, None)
    assert w is not None and status == f"CRI: containerd 1.6.20 (CRI v1) on {sock}"
    w.close()
    cfg = load_config("/dev/null", {"filters.labels.exclude": "=web"})
    with pytest.raises(ConfigError, match="not a label selector"):
        open_watcher(cfg.cri, cfg.filters, None)


def test_scope_rules() -> None:
    s = Scope(include_namespaces=["team-*"], exclude_namespaces=["team-x"],
              exclude_labels=["canary,tier!=db"])
    assert not s.excluded("team-a", {}, {})
    assert s.excluded("team-x", {}, {})
    assert s.excluded("other", {}, {})
    assert s.excluded("team-a", {"canary": "1", "tier": "web"}, {})
    assert not s.excluded("team-a", {"canary": "1", "tier": "db"}, {})
    assert not s.excluded("", {}, {})  # outside a pod, namespaces do not apply
    inc = Scope(include_labels=["app=web", "!legacy"])
    assert not inc.excluded("ns", {"app": "web", "legacy": "y"}, {})
    assert not inc.excluded("ns", {}, {"other": "1"})
    assert inc.excluded("ns", {"legacy": "1"}, {})
    assert not Scope().active and s.active
    for bad in ("", "a=b,", "=x", "a===b"):
        with pytest.raises(ConfigError):
            Scope(exclude_labels=[bad])


def test_systemd_cgroup_paths() -> None:
    assert systemd_to_path("kubepods-burstable-pod12.slice:cri-containerd:abc") == (
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/"
        "cri-containerd-abc.scope")
    assert systemd_to_path("/kubepods/besteffort/pod1/abc") == "/kubepods/besteffort/pod1/abc"
    assert systemd_to_path("") == ""


def test_client_error_is_one_line(tmp_path: Path) -> None:
    client = CriClient(str(tmp_path / "absent.sock"), timeout_s=0.2)
    with pytest.raises(CriError) as exc:
        client.version()
    assert "\n" not in str(exc.value) and str(exc.value).startswith("CRI Version: ")
    client.close()
