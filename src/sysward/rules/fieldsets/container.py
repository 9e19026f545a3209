"""``container.*`` and ``k8s.*``: where the process runs.

Container identity comes from enrichment (cgroup path -> id, runtime metadata when a runtime
socket answers).  A host process has ``container.id`` "host" and ``container.name`` "host",
as in Falco; its image fields are missing.  ``container.privileged`` uses the runtime's flag
when enrichment has one (Process attribute ``container_privileged``), else the process's
capabilities: a container process holding every capability is taken as privileged.

sysward has no Kubernetes API client and no mount table per container: ``k8s.*`` and
``container.mount*`` are always missing, which makes a comparison on them false exactly as
in Falco running without that metadata.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sysward.events.model import Event
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


def _id(e: Event) -> str:
    p = e.proc
    return p.container_id or "host" if p is not None else "host"


_ID_INLINE = Inline("(($t.container_id or 'host') if ($t := e.proc) is not None else 'host')")


def _in_container(e: Event) -> bool:
    p = e.proc
    return p is not None and bool(p.container_id) and p.container_id != "host"


def _name(e: Event) -> str | None:
    if not _in_container(e):
        return "host"
    return e.proc.container_name or None  # type: ignore[union-attr]


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
        image = e.proc.container_image  # type: ignore[union-attr]
        if not image:
            return None
        if part is None:
            return image
        return split_image(image)[part] or None

    return extract


def _privileged(e: Event) -> bool | None:
    if not _in_container(e):
        return None
    p = e.proc
    flag = getattr(p, "container_privileged", None)
    if isinstance(flag, bool):
        return flag
    return p.cap_effective & r.ALL_CAPS_MASK == r.ALL_CAPS_MASK  # type: ignore[union-attr]


def _attr(name: str) -> Extractor:
    def extract(e: Event) -> Any:
        if not _in_container(e):
            return None
        value = getattr(e.proc, name, None)
        return value if value else None

    return extract




_C = "enrichment (cgroup path, container runtime)"
_NO_K8S = "never: no Kubernetes API client (missing, as in Falco without k8s metadata)"
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
    FieldDef("container.image.id", S, "Image id.", simple(_attr("container_image_id")),
             availability=_C + " when the runtime reports it"),
    FieldDef("container.type", S, "Container runtime (docker, containerd, cri-o...).",
             simple(lambda e: "host" if not _in_container(e)
                     else getattr(e.proc, "container_type", None) or None),
             availability=_C + " when the runtime reports it"),
    FieldDef("container.privileged", B, "True for a privileged container (runtime flag, "
             "else: the process holds every capability).", simple(_privileged),
             availability=_C),
    FieldDef("container.start_ts", ABSTIME, "Container start time, ns since the epoch.",
             simple(_attr("container_start_ts")),
             availability=_C + " when the runtime reports it"),
    FieldDef("container.mounts", S, "Mounts of the container.", no_value,
             availability=_NO_MNT),
    FieldDef("container.mount", S, "One mount by destination: container.mount[/path].",
             no_value, arg=ArgKind.KEY, availability=_NO_MNT),
    FieldDef("container.mount.dest", S, "Destination of a mount: container.mount.dest[/path].",
             no_value, arg=ArgKind.KEY, availability=_NO_MNT),
    FieldDef("container.mount.source", S, "Source of a mount: container.mount.source[/path].",
             no_value, arg=ArgKind.KEY, availability=_NO_MNT),
    FieldDef("k8s.ns.name", S, "Kubernetes namespace of the pod.", no_value,
             availability=_NO_K8S),
    FieldDef("k8s.pod.name", S, "Kubernetes pod name.", no_value, availability=_NO_K8S),
    FieldDef("k8s.pod.id", S, "Kubernetes pod uid (legacy name).", no_value,
             availability=_NO_K8S),
    FieldDef("k8s.pod.uid", S, "Kubernetes pod uid.", no_value, availability=_NO_K8S),
    FieldDef("k8s.pod.labels", S, "Kubernetes pod labels.", no_value, availability=_NO_K8S),
    FieldDef("k8s.pod.label", S, "One pod label: k8s.pod.label[NAME].", no_value,
             arg=ArgKind.KEY, availability=_NO_K8S),
    FieldDef("k8s.pod.ip", S, "Kubernetes pod IP.", no_value, availability=_NO_K8S),
    FieldDef("k8s.pod.cni.json", S, "Kubernetes pod CNI result.", no_value,
             availability=_NO_K8S),
    FieldDef("k8s.ns.labels", S, "Kubernetes namespace labels.", no_value,
             availability=_NO_K8S),
]
