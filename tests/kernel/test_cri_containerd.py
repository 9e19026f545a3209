"""Pods through a real containerd: their alerts carry pod, namespace, labels, container name
and image; an excluded namespace is filtered (in the kernel once its cgroup is known); a pod
that comes and goes leaves nothing in the caches or the kernel map."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import AgentProcess
from containerd_fixture import IMAGE, Containerd, build_image, missing_tools

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    reason = missing_tools()
    if reason is not None:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("containerd")
    ctd = Containerd(work, build_image(work))
    try:
        yield ctd
    finally:
        ctd.close()


def metrics(agent: AgentProcess) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{agent.port}/metrics", timeout=5).read()
    out: dict[str, float] = {}
    for line in text.decode().splitlines():
        m = re.match(r"^([a-z_]+)(?:\{[^}]*\})? ([-0-9.e+]+)$", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def wait_for(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out: {what}")


def kernel_scope_ids() -> set[int]:
    """Keys of every loaded map named scope_cgroups (bpftool reads the kernel's own copy)."""
    out = subprocess.run(["bpftool", "-j", "map", "dump", "name", "scope_cgroups"],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0 or not out.stdout.strip():
        return set()
    data = json.loads(out.stdout)
    entries: list[dict[str, object]] = []
    for item in data:  # one list per map when several maps have the name
        if isinstance(item, dict) and "elements" in item:
            entries += item["elements"]
        elif isinstance(item, dict):
            entries.append(item)
    ids = set()
    for e in entries:
        key = e.get("key")
        if isinstance(key, list):
            ids.add(int.from_bytes(bytes(int(b, 16) for b in key), "little"))
        elif isinstance(key, int):
            ids.add(key)
    return ids


def agent(tmp_path: Path, ctd: Containerd, *extra: str) -> AgentProcess:
    return AgentProcess(tmp_path, "--set", f"cri.sockets={ctd.sock}",
                        "--set", "cri.refresh_s=0.5", *extra)


def test_pod_alert_carries_pod_and_image(containerd: Containerd, tmp_path: Path) -> None:
    a = agent(tmp_path, containerd)
    try:
        assert "CRI: containerd" in "\n".join(a.stderr)
        pod = containerd.run_pod("web-7f9c", "team-a", {"app": "web", "tier": "front"})
        containerd.run_container(
            pod, "shell", ["/bin/busybox", "sh", "-c",
                           "sleep 1; /bin/busybox mkdir -p /etc; "
                           "echo x > /etc/sysward-k8s-probe; sleep 30"],
            labels={"role": "probe"})
        alert = a.wait_alert("Write Below Etc",
                             lambda al: al["output_fields"].get("fd.name")
                             == "/etc/sysward-k8s-probe", timeout=20)
        f = alert["output_fields"]
        assert f["k8s.pod.name"] == "web-7f9c"
        assert f["k8s.ns.name"] == "team-a"
        assert f["k8s.pod.uid"] == pod.config.metadata.uid
        assert f["k8s.pod.labels"] == "app:web,tier:front"
        assert f["container.name"] == "shell"
        assert f["container.image.repository"] == IMAGE.rsplit(":", 1)[0]
        assert f["container.image.tag"] == "test"
        assert f["container.id"] == pod.containers[0][:12]
        # a container that alerts in its first milliseconds: the alert goes out at once,
        # with or without the pod (the runtime may not have answered yet), and is counted
        # when it went without
        containerd.run_container(pod, "eager", ["/bin/busybox", "sh", "-c",
                                                "echo x > /etc/sysward-k8s-eager; sleep 30"])
        eager = a.wait_alert("Write Below Etc",
                             lambda al: al["output_fields"].get("fd.name")
                             == "/etc/sysward-k8s-eager", timeout=20)["output_fields"]
        counted = metrics(a)["sysward_enrich_alerts_without_container_meta_total"]
        if eager["k8s.pod.name"] is None:
            assert counted >= 1 and eager["container.name"] is None
        else:
            assert eager["k8s.pod.name"] == "web-7f9c" and eager["container.name"] == "eager"
    finally:
        a.stop()
        for p in list(containerd.pods):
            containerd.remove_pod(p)


def test_excluded_namespace_is_filtered_and_leaves_nothing(containerd: Containerd,
                                                           tmp_path: Path) -> None:
    a = agent(tmp_path, containerd, "--set", "filters.namespaces.exclude=skip-*")
    try:
        pod = containerd.run_pod("batch-1", "skip-me", {"app": "batch"})
        cid = containerd.run_container(
            pod, "worker", ["/bin/busybox", "sh", "-c",
                            "sleep 1; /bin/busybox mkdir -p /etc; "
                            "while true; do echo x > /etc/sysward-k8s-excluded; sleep 0.2; "
                            "done"])
        cgroup_id = containerd.cgroup_id(pod, cid)
        # the out-of-scope container's cgroup reaches the kernel map...
        wait_for(lambda: cgroup_id in kernel_scope_ids(), 10, "cgroup id in scope_cgroups")
        time.sleep(2.0)  # ...and 10 writes to /etc later no alert came from it
        assert not a.has_alert("Write Below Etc",
                               lambda al: al["output_fields"].get("fd.name")
                               == "/etc/sysward-k8s-excluded")
        m = metrics(a)
        assert m["sysward_cri_kernel_cgroups"] >= 1
        # a pod in another namespace is still watched by the same agent
        other = containerd.run_pod("web-2", "team-b", {"app": "web"})
        containerd.run_container(other, "shell", ["/bin/busybox", "sh", "-c",
                                                  "sleep 1; /bin/busybox mkdir -p /etc; "
                                                  "echo x > /etc/sysward-k8s-kept; sleep 30"])
        a.wait_alert("Write Below Etc",
                     lambda al: al["output_fields"].get("fd.name") == "/etc/sysward-k8s-kept"
                     and al["output_fields"].get("k8s.ns.name") == "team-b", timeout=20)
        # the pods go: nothing is left in the caches or the kernel map
        containerd.remove_pod(pod)
        containerd.remove_pod(other)
        def emptied() -> bool:
            m = metrics(a)
            return m["sysward_cri_containers"] == 0 and m["sysward_cri_pods"] == 0

        wait_for(emptied, 10, f"caches emptied: {metrics(a)}")
        m = metrics(a)
        assert m["sysward_cri_kernel_cgroups"] == 0
        assert m["sysward_cri_removed_total"] >= 2
        assert cgroup_id not in kernel_scope_ids()
    finally:
        a.stop()
