"""A small client of the Container Runtime Interface (runtime.v1 RuntimeService).

containerd and CRI-O answer the same gRPC service on a unix socket; Kubernetes' kubelet is
its usual caller.  sysward asks it, from a thread of its own (never the rule worker's), who a
container is: its name, image and labels, and the pod it belongs to.  Every call has a short
deadline: a runtime that hangs costs the lookup thread that long, nothing else.

The messages are the generated ``runtime_v1_pb2`` module (from ``runtime_v1.proto`` beside
this file); the calls go through ``grpc.Channel.unary_unary`` with those messages'
serializers, so no generated service stubs are needed.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import orjson
from google.protobuf.message import Message

from sysward.enrich.cri import runtime_v1_pb2 as pb
from sysward.events.model import ContainerMeta

_SERVICE = "/runtime.v1.RuntimeService/"
_MAX_MESSAGE = 16 << 20  # a node with many pods lists them in one answer

M = TypeVar("M", bound=Message)


class CriError(Exception):
    """A CRI call failed (runtime down, deadline passed, container unknown...)."""

    def __init__(self, method: str, code: str, details: str) -> None:
        super().__init__(f"CRI {method}: {code}: {details}")
        self.method = method
        self.code = code


@dataclass(frozen=True, slots=True)
class RuntimeVersion:
    socket: str
    name: str  # "containerd", "cri-o", ...
    version: str
    api_version: str

    def describe(self) -> str:
        return f"{self.name} {self.version} (CRI {self.api_version}) on {self.socket}"


def is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


class CriClient:
    """One runtime's RuntimeService on ``socket``; each call waits at most ``timeout_s``."""

    def __init__(self, socket: str, timeout_s: float = 1.0) -> None:
        self.socket = socket
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(
            f"unix://{socket}",
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.enable_http_proxy", 0),  # a unix socket never goes through a proxy
            ],
        )
        self._calls: dict[str, Any] = {}
        self.calls = 0
        self.errors = 0

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: Message, reply: type[M]) -> M:
        fn = self._calls.get(method)
        if fn is None:
            fn = self._channel.unary_unary(
                _SERVICE + method,
                request_serializer=type(request).SerializeToString,
                response_deserializer=reply.FromString,
            )
            self._calls[method] = fn
        self.calls += 1
        try:
            result: M = fn(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            self.errors += 1
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise CriError(method, getattr(code, "name", str(code)), str(details)) from None
        return result

    # -- what the agent reads ------------------------------------------------------------
    def version(self) -> RuntimeVersion:
        r = self._call("Version", pb.VersionRequest(version="v1"), pb.VersionResponse)
        return RuntimeVersion(self.socket, r.runtime_name, r.runtime_version,
                              r.runtime_api_version)

    def list_containers(self) -> list[pb.Container]:
        r = self._call("ListContainers", pb.ListContainersRequest(), pb.ListContainersResponse)
        return list(r.containers)

    def list_pods(self) -> list[pb.PodSandbox]:
        r = self._call("ListPodSandbox", pb.ListPodSandboxRequest(), pb.ListPodSandboxResponse)
        return list(r.items)

    def container_status(self, container_id: str) -> pb.ContainerStatusResponse:
        return self._call("ContainerStatus",
                          pb.ContainerStatusRequest(container_id=container_id, verbose=True),
                          pb.ContainerStatusResponse)

    def pod_status(self, pod_id: str) -> pb.PodSandboxStatus:
        r = self._call("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id),
                       pb.PodSandboxStatusResponse)
        return r.status

    # -- pod lifecycle (what a kubelet does; sysward's tests start real pods with it) ------
    def run_pod(self, config: pb.PodSandboxConfig) -> str:
        r = self._call("RunPodSandbox", pb.RunPodSandboxRequest(config=config),
                       pb.RunPodSandboxResponse)
        return r.pod_sandbox_id

    def stop_pod(self, pod_id: str) -> None:
        self._call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id),
                   pb.StopPodSandboxResponse)

    def remove_pod(self, pod_id: str) -> None:
        self._call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
                   pb.RemovePodSandboxResponse)

    def create_container(self, pod_id: str, config: pb.ContainerConfig,
                         pod_config: pb.PodSandboxConfig) -> str:
        r = self._call("CreateContainer",
                       pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config,
                                                 sandbox_config=pod_config),
                       pb.CreateContainerResponse)
        return r.container_id

    def start_container(self, container_id: str) -> None:
        self._call("StartContainer", pb.StartContainerRequest(container_id=container_id),
                   pb.StartContainerResponse)

    def stop_container(self, container_id: str, timeout_s: int = 0) -> None:
        self._call("StopContainer",
                   pb.StopContainerRequest(container_id=container_id, timeout=timeout_s),
                   pb.StopContainerResponse)

    def remove_container(self, container_id: str) -> None:
        self._call("RemoveContainer", pb.RemoveContainerRequest(container_id=container_id),
                   pb.RemoveContainerResponse)


def probe(sockets: Sequence[str],
          timeout_s: float = 1.0) -> tuple[CriClient, RuntimeVersion] | None:
    """The first socket of ``sockets`` whose runtime answers Version."""
    for path in sockets:
        if not is_socket(path):
            continue
        client = CriClient(path, timeout_s)
        try:
            return client, client.version()
        except CriError:
            client.close()
    return None


# -- CRI answers -> ContainerMeta ---------------------------------------------------------

def _hex_id(ref: str) -> str:
    """The hex digits of 'sha256:<hex>' (or of a bare hex id); '' for anything else."""
    _, _, digits = ref.rpartition(":")
    return digits if len(digits) == 64 and all(c in "0123456789abcdef" for c in digits) else ""


def _verbose_info(info: Any) -> dict[str, Any]:
    raw = info.get("info") if info else None
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _privileged(info: dict[str, Any]) -> bool | None:
    # CRI-O reports the flag itself; containerd echoes the ContainerConfig it was given.
    flag = info.get("privileged")
    if isinstance(flag, bool):
        return flag
    config = info.get("config")
    if isinstance(config, dict):
        ctx = (config.get("linux") or {}).get("security_context") or {}
        if isinstance(ctx, dict):
            return bool(ctx.get("privileged", False))
    return None


def sandbox_of(status: pb.ContainerStatusResponse) -> str:
    """The pod sandbox id of a container, from the verbose info both runtimes give."""
    info = _verbose_info(status.info)
    for key in ("sandboxID", "sandboxId", "sandbox_id"):
        value = info.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def describe(status: pb.ContainerStatusResponse,
             pod: pb.PodSandboxStatus | pb.PodSandbox | None) -> ContainerMeta:
    """ContainerMeta from a ContainerStatus answer and (when the container is in a pod) the
    pod's status.  ``excluded`` is left False: scoping is decided by the caller."""
    s = status.status
    image = s.image.user_specified_image or s.image.image
    image_id = _hex_id(s.image_id) or _hex_id(s.image_ref)
    digest = ""
    if "@" in s.image_ref:
        digest = s.image_ref.rpartition("@")[2]
    if image and _hex_id(image) and "/" not in image:
        image = ""  # started by image id: an id is no name
    meta = _verbose_info(status.info)
    return ContainerMeta(
        name=s.metadata.name,
        image=image,
        image_id=image_id,
        image_digest=digest,
        labels=dict(s.labels),
        privileged=_privileged(meta),
        start_ts=s.started_at or s.created_at,
        pod_name=pod.metadata.name if pod is not None else "",
        pod_uid=pod.metadata.uid if pod is not None else "",
        pod_namespace=pod.metadata.namespace if pod is not None else "",
        pod_labels=dict(pod.labels) if pod is not None else {},
    )


def describe_sandbox(pod: pb.PodSandboxStatus) -> ContainerMeta:
    """ContainerMeta of a pod's sandbox (pause) container: the pod is all it has."""
    return ContainerMeta(
        pod_name=pod.metadata.name, pod_uid=pod.metadata.uid,
        pod_namespace=pod.metadata.namespace, pod_labels=dict(pod.labels),
        start_ts=pod.created_at)


def runtime_name(name: str) -> str:
    """container.type of a runtime's Version name."""
    low = name.lower()
    if "containerd" in low:
        return "containerd"
    if "cri-o" in low or "crio" in low:
        return "cri-o"
    if "docker" in low:
        return "docker"
    return low or "unknown"


def cgroups_path(status: pb.ContainerStatusResponse) -> str:
    """The container's cgroup, relative to a hierarchy's root, from the OCI spec the runtime
    echoes in its verbose info ('' when it does not)."""
    spec = _verbose_info(status.info).get("runtimeSpec")
    raw = ((spec or {}).get("linux") or {}).get("cgroupsPath") if isinstance(spec, dict) else ""
    return systemd_to_path(raw) if isinstance(raw, str) else ""


_SYSTEMD = re.compile(r"^(?P<slice>[^:/]*\.slice):(?P<prefix>[^:]+):(?P<name>[^:]+)$")


def systemd_to_path(raw: str) -> str:
    """A cgroupfs path unchanged; systemd's 'slice:prefix:name' as the path systemd makes of
    it ('kubepods-besteffort-pod1.slice:cri-containerd:ID' ->
    '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/
    cri-containerd-ID.scope')."""
    m = _SYSTEMD.match(raw)
    if m is None:
        return raw if raw.startswith("/") else ("/" + raw if raw else "")
    parts: list[str] = []
    slice_name = m.group("slice")[: -len(".slice")]
    if slice_name and slice_name != "-":
        words = slice_name.split("-")
        parts = ["-".join(words[: i + 1]) + ".slice" for i in range(len(words))]
    return "/" + "/".join([*parts, f"{m.group('prefix')}-{m.group('name')}.scope"])


def cgroup_id_of(mount: str, path: str) -> int:
    """The cgroup v2 id of ``path`` below the v2 mount (its directory's inode), 0 if none."""
    if not path:
        return 0
    try:
        return os.stat(mount.rstrip("/") + path).st_ino
    except OSError:
        return 0
