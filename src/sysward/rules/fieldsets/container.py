"""``container.*`` and ``k8s.*``: where the process runs.

Container identity comes from enrichment: the cgroup path gives the id, the runtime gives the
rest (docker and podman from their state files; containerd and CRI-O through their CRI
socket, with the pod: ``Process.container.meta``).  A host process has ``container.id``
"host" and ``container.name`` "host", as in Falco; its image and k8s fields are missing.  So
are a container's while its runtime has not answered yet: the event is not held back for
them.  ``container.privileged`` uses the runtime's flag when it reports one, else the
process's capabilities: a container process holding every capability is taken as privileged.

The pod fields come from the node's runtime (what the kubelet gave it), not from the
Kubernetes API: namespace labels, the pod IP and CNI result, and the container mount table
are missing, which makes a comparison on them false exactly as in Falco without that
metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from sysward.events.model import ContainerMeta, Event
from sysward.rules import render as r
from sysward.rules.fieldtypes import (
    ArgKind,
    Extractor,
    FieldDef,
    FieldType,
    Inline,
    no_value,
    simple,
)

S, B, ABSTIME = FieldType.STRING, FieldType.BOOL, FieldType.ABSTIME
SHORT_ID = 12


def _id(e: Event) -> str:
    p = e.proc
    return p.container_id or "host" if p is not None else "host"


_ID_INLINE = Inline("(($t.container_id or 'host') if ($t := e.proc) is not None else 'host')")


def _in_container(e: Event) -> bool:
    p = e.proc
    return p is not None and bool(p.container_id) and p.container_id != "host"


def _meta(e: Event) -> ContainerMeta | None:
    """The runtime's record of the event's container; None on the host or while unknown."""
    p = e.proc
    if p is None or not p.container_id or p.container_id == "host":
        return None
    info = p.container
    return info.meta if info is not None else None


def _name(e: Event) -> str | None:
    if not _in_container(e):
        return "host"
    meta = _meta(e)
    if meta is not None:
        return meta.name or None
    return e.proc.container_name or None  # type: ignore[union-attr]


def _container_image(e: Event) -> str:
    meta = _meta(e)
    if meta is not None:
        return meta.image
    return e.proc.container_image if e.proc is not None else ""


def labels_text(labels: Mapping[str, str]) -> str | None:
    """Labels as Falco prints them: 'key:value' pairs, comma separated (sorted by key)."""
    if not labels:
        return None
    return ",".join(f"{k}:{labels[k]}" for k in sorted(labels))


@lru_cache(maxsize=1024)
def split_image(image: str) -> tuple[str, str, str]:
    """(repository, tag, digest) of an image reference such as 'docker.io/lib/nginx:1.25'."""
    digest = ""
    if "@" in image:
        image, _, digest = image.partition("@")
    repo, tag = image, ""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:  # a ':' after the last '/' is the tag, not a registry port
        repo, tag = image[:colon], image[colon + 1:]
    return repo, tag, digest


def _image(part: int | None) -> Extractor:
    def extract(e: Event) -> str | None:
        if not _in_container(e):
            return None
        image = _container_image(e)
        if part == 2:
            meta = _meta(e)
            if meta is not None and meta.image_digest:
                return meta.image_digest
        if not image:
            return None
        if part is None:
            return image
        return split_image(image)[part] or None

    return extract


def _image_id(e: Event) -> str | None:
    meta = _meta(e)
    return meta.image_id[:SHORT_ID] or None if meta is not None else None


def _type(e: Event) -> str | None:
    if not _in_container(e):
        return "host"
    info = e.proc.container  # type: ignore[union-attr]
    return info.runtime or None if info is not None else None


def _start_ts(e: Event) -> int | None:
    meta = _meta(e)
    return meta.start_ts or None if meta is not None else None


def _meta_str(attr: str) -> Callable[[Any], Extractor]:
    def factory(_arg: Any) -> Extractor:
        def extract(e: Event) -> str | None:
            meta = _meta(e)
            return getattr(meta, attr) or None if meta is not None else None

        return extract

    return factory


def _labels(attr: str) -> Callable[[Any], Extractor]:
    def factory(_arg: Any) -> Extractor:
        def extract(e: Event) -> str | None:
            meta = _meta(e)
            return labels_text(getattr(meta, attr)) if meta is not None else None

        return extract

    return factory


def _label(attr: str) -> Callable[[Any], Extractor]:
    def factory(key: Any) -> Extractor:
        name = str(key)

        def extract(e: Event) -> str | None:
            meta = _meta(e)
            return getattr(meta, attr).get(name) if meta is not None else None

        return extract

    return factory


def _privileged(e: Event) -> bool | None:
    if not _in_container(e):
        return None
    meta = _meta(e)
    if meta is not None and meta.privileged is not None:
        return meta.privileged
    p = e.proc
    return p.cap_effective & r.ALL_CAPS_MASK == r.ALL_CAPS_MASK  # type: ignore[union-attr]


_C = "enrichment (cgroup path, container runtime)"
_CRI = ("enrichment: the container runtime (docker/podman state files, containerd/CRI-O "
        "through CRI); missing until the runtime has answered")
_POD = ("enrichment: the pod, from containerd/CRI-O through CRI (missing outside a pod and "
        "until the runtime has answered)")
_NO_K8S = ("never: the Kubernetes API is not read (missing, as in Falco without k8s "
           "metadata)")
_NO_MNT = "never: container mounts are not collected (missing)"

FIELDS: list[FieldDef] = [
    FieldDef("container.id", S, "Short container id (12 hex digits), or 'host'.",
             simple(_id), availability=_C, inline=lambda _arg, _t: _ID_INLINE),
    FieldDef("container.name", S, "Container name; 'host' for host processes.",
             simple(_name), availability=_C),
    FieldDef("container.image", S, "Image reference the container runs.",
             simple(_image(None)), availability=_C),
    FieldDef("container.image.repository", S, "Image repository (no tag or digest).",
             simple(_image(0)), availability=_C),
    FieldDef("container.image.tag", S, "Image tag.", simple(_image(1)), availability=_C),
    FieldDef("container.image.digest", S, "Image digest.", simple(_image(2)),
             availability=_C),
    FieldDef("container.image.id", S, "Image id (12 hex digits).", simple(_image_id),
             availability=_CRI),
    FieldDef("container.type", S, "Container runtime (docker, containerd, cri-o...).",
             simple(_type), availability=_C),
    FieldDef("container.privileged", B, "True for a privileged container (runtime flag, "
             "else: the process holds every capability).", simple(_privileged),
             availability=_C),
    FieldDef("container.start_ts", ABSTIME, "Container start time, ns since the epoch.",
             simple(_start_ts), availability=_CRI),
    FieldDef("container.labels", S, "Container labels as 'key:value' pairs, comma separated.",
             _labels("labels"), availability=_CRI),
    FieldDef("container.label", S, "One container label: container.label[NAME].",
             _label("labels"), arg=ArgKind.KEY, availability=_CRI),
    FieldDef("container.mounts", S, "Mounts of the container.", no_value,
             availability=_NO_MNT),
    FieldDef("container.mount", S, "One mount by destination: container.mount[/path].",
             no_value, arg=ArgKind.KEY, availability=_NO_MNT),
    FieldDef("container.mount.dest", S, "Destination of a mount: container.mount.dest[/path].",
             no_value, arg=ArgKind.KEY, availability=_NO_MNT),
    FieldDef("container.mount.source", S, "Source of a mount: container.mount.source[/path].",
             no_value, arg=ArgKind.KEY, availability=_NO_MNT),
    FieldDef("k8s.ns.name", S, "Kubernetes namespace of the pod.", _meta_str("pod_namespace"),
             availability=_POD),
    FieldDef("k8s.pod.name", S, "Kubernetes pod name.", _meta_str("pod_name"),
             availability=_POD),
    FieldDef("k8s.pod.id", S, "Kubernetes pod uid (legacy name).", _meta_str("pod_uid"),
             availability=_POD),
    FieldDef("k8s.pod.uid", S, "Kubernetes pod uid.", _meta_str("pod_uid"),
             availability=_POD),
    FieldDef("k8s.pod.labels", S, "Kubernetes pod labels as 'key:value' pairs, comma "
             "separated.", _labels("pod_labels"), availability=_POD),
    FieldDef("k8s.pod.label", S, "One pod label: k8s.pod.label[NAME].", _label("pod_labels"),
             arg=ArgKind.KEY, availability=_POD),
    FieldDef("k8s.pod.ip", S, "Kubernetes pod IP.", no_value, availability=_NO_K8S),
    FieldDef("k8s.pod.cni.json", S, "Kubernetes pod CNI result.", no_value,
             availability=_NO_K8S),
    FieldDef("k8s.ns.labels", S, "Kubernetes namespace labels.", no_value,
             availability=_NO_K8S),
]

#: what every alert from a container carries in output_fields besides its rule's own fields
#: (Falco's append_output for container and k8s metadata)
ALERT_FIELDS: tuple[tuple[str, Extractor], ...] = (
    ("container.name", _name),
    ("container.image.repository", _image(0)),
    ("container.image.tag", _image(1)),
    ("k8s.ns.name", _meta_str("pod_namespace")(None)),
    ("k8s.pod.name", _meta_str("pod_name")(None)),
    ("k8s.pod.uid", _meta_str("pod_uid")(None)),
    ("k8s.pod.labels", _labels("pod_labels")(None)),
)


def container_alert_fields(event: Event, fields: dict[str, Any]) -> None:
    """Add the container and pod of a container's event to an alert's ``fields`` (keys the
    rule's output already has are left as they are); host events get nothing."""
    if not _in_container(event):
        return
    for name, extract in ALERT_FIELDS:
        if name not in fields:
            fields[name] = extract(event)
