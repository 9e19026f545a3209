"""A real containerd for the kernel tests: private root, state and socket, a local image.

Debian's containerd, runc, buildah and busybox-static (Makefile DEB_PKGS) are all it needs:
the image is built here from scratch with buildah (vfs storage, no daemon, no registry), and
pods are started through containerd's CRI plugin the way a kubelet does (host network, so no
CNI), with sysward's own CRI client.

Two settings matter on the project's VM.  Its root lacks CAP_SYS_RESOURCE (not in the
bounding set), and the CRI plugin gives a pod's sandbox an oom_score_adj of -998: runc's
nsexec cannot write that and dies, which runc reports as "can't get final child's PID from
pipe: EOF".  ``restrict_oom_score_adj`` keeps every score at or above containerd's own.
And a pod on the host network must leave ``hostname`` empty (no UTS namespace of its own).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sysward.enrich.cri import runtime_v1_pb2 as pb
from sysward.enrich.cri.client import CriClient, CriError

IMAGE = "localhost/sysward-busybox:test"
TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "buildah")
BUSYBOX = "/bin/busybox"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def missing_tools() -> str | None:
    """Why the containerd tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "containerd needs root"
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if absent:
        return f"{', '.join(absent)} not installed (make setup installs them)"
    if not Path(BUSYBOX).exists() or b"/lib64/ld-linux" in Path(BUSYBOX).read_bytes()[:4096]:
        return f"{BUSYBOX} is not the static busybox (install busybox-static)"
    return None


def build_image(work: Path) -> Path:
    """An OCI archive of a one-file image (static busybox), built with buildah."""
    archive = work / "busybox.tar"
    store = ["--storage-driver", "vfs", "--root", str(work / "bstore"),
             "--runroot", str(work / "brun")]

    def buildah(*args: str) -> str:
        return subprocess.run(["buildah", *store, *args], check=True, capture_output=True,
                              text=True, timeout=120).stdout.strip()

    ctr = buildah("from", "scratch")
    buildah("copy", ctr, BUSYBOX, "/bin/busybox")
    buildah("config", "--cmd", "/bin/busybox sleep 2147483647", ctr)
    buildah("commit", "-q", ctr, IMAGE)
    buildah("push", IMAGE, f"oci-archive:{archive}:{IMAGE}")
    buildah("rm", ctr)
    return archive


CONFIG = """version = 2
root = "{work}/root"
state = "{work}/state"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{work}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{work}/cni/bin"
    conf_dir = "{work}/cni/conf"
"""


@dataclass
class Pod:
    id: str
    config: pb.PodSandboxConfig
    cgroup_parent: str
    containers: list[str] = field(default_factory=list)


class Containerd:
    """containerd running from ``work``; ``client`` is a CRI client on its socket."""

    def __init__(self, work: Path, image_archive: Path) -> None:
        self.work = work
        self.sock = str(work / "containerd.sock")
        (work / "cni" / "bin").mkdir(parents=True, exist_ok=True)
        (work / "cni" / "conf").mkdir(parents=True, exist_ok=True)
        cfg = work / "config.toml"
        cfg.write_text(CONFIG.format(work=work, sock=self.sock, image=IMAGE))
        self.log = open(work / "containerd.log", "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(["containerd", "--config", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.client = CriClient(self.sock, timeout_s=60)
        self.pods: list[Pod] = []
        deadline = time.monotonic() + 30
        while True:
            try:
                self.version = self.client.version()
                break
            except CriError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"containerd did not start: {self.log_tail()}") from None
                time.sleep(0.1)
        subprocess.run(["ctr", "-a", self.sock, "-n", "k8s.io", "images", "import",
                        "--snapshotter", "native", str(image_archive)],
                       check=True, capture_output=True, timeout=120)

    def log_tail(self) -> str:
        return (self.work / "containerd.log").read_text()[-2000:]

    def run_pod(self, name: str, namespace: str, labels: dict[str, str]) -> Pod:
        uid = str(uuid.uuid4())
        parent = f"/kubepods/besteffort/pod{uid}"
        host = pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD)
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace),
            log_directory=str(self.work / "logs" / uid), labels=labels,
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=parent,
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=host)))
        pod = Pod(self.client.run_pod(config), config, parent)
        self.pods.append(pod)
        return pod

    def run_container(self, pod: Pod, name: str, command: list[str],
                      labels: dict[str, str] | None = None) -> str:
        host = pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD)
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=IMAGE),
            command=command, labels=labels or {}, log_path=f"{name}.log",
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(namespace_options=host)))
        cid = self.client.create_container(pod.id, config, pod.config)
        self.client.start_container(cid)
        pod.containers.append(cid)
        return cid

    def cgroup_id(self, pod: Pod, container_id: str) -> int:
        """The cgroup v2 id (inode) of a container, as the kernel reports it."""
        from sysward.enrich import find_cgroup2_mount

        mount = find_cgroup2_mount()
        assert mount is not None
        return os.stat(f"{mount}{pod.cgroup_parent}/{container_id}").st_ino

    def remove_pod(self, pod: Pod) -> None:
        with contextlib.suppress(CriError):
            self.client.stop_pod(pod.id)
        with contextlib.suppress(CriError):
            self.client.remove_pod(pod.id)
        if pod in self.pods:
            self.pods.remove(pod)
        _remove_cgroups(pod.cgroup_parent)

    def close(self) -> None:
        for pod in list(self.pods):
            self.remove_pod(pod)
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
        # the shims of removed pods are gone; unmount whatever a killed one left behind
        subprocess.run(["umount", "-R", "-l", str(self.work / "state")], capture_output=True)


def _remove_cgroups(parent: str) -> None:
    """The pod's cgroup directories (runc leaves the parents it made) in every hierarchy."""
    for hierarchy in [CGROUP_ROOT, *CGROUP_ROOT.iterdir()] if CGROUP_ROOT.is_dir() else []:
        path = Path(str(hierarchy) + parent)
        for d in (path, path.parent, path.parent.parent):
            with contextlib.suppress(OSError):
                d.rmdir()
