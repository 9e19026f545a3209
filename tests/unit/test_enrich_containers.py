"""Container identity from cgroup paths, runtime metadata files, and cgroup id -> path."""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from sysward.enrich import Enricher
from sysward.enrich.containers import (
    CgroupResolver,
    ContainerMetadata,
    ContainerRef,
    container_id,
    find_cgroup2_mount,
    parse_cgroup_path,
    pick_cgroup,
)
from sysward.events.model import Event

CID = "3f8a2c1b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"
POD = "pod7d3e0c2a-1b4f-4e7a-9c3d-2f1e0a9b8c7d"
POD_SYSTEMD = "pod7d3e0c2a_1b4f_4e7a_9c3d_2f1e0a9b8c7d"


@pytest.mark.parametrize(
    ("path", "runtime"),
    [
        (f"/docker/{CID}", "docker"),
        (f"/system.slice/docker-{CID}.scope", "docker"),
        (f"/kubepods/besteffort/{POD}/{CID}", "kubernetes"),
        (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-{POD_SYSTEMD}.slice/"
         f"cri-containerd-{CID}.scope", "containerd"),
        (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-{POD_SYSTEMD}.slice/"
         f"crio-{CID}.scope", "cri-o"),
        (f"/machine.slice/libpod-{CID}.scope", "podman"),
        (f"/machine.slice/libpod-{CID}.scope/container", "podman"),
        (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope",
         "podman"),
        (f"/libpod_parent/libpod-{CID}", "podman"),
        # docker-in-docker: the innermost container wins
        (f"/docker/{'0' * 64}/docker/{CID}", "docker"),
    ],
)
def test_runtime_paths(path: str, runtime: str) -> None:
    ref = parse_cgroup_path(path)
    assert ref == ContainerRef(runtime, CID)
    assert container_id(path) == CID[:12] == "3f8a2c1b9d0e"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/user.slice/user-1000.slice/session-3.scope",
        "/system.slice/sshd.service",
        "/process_api/8a1154a0917d3b0e1c5c04fbdf92aa17",  # 32 hex: not a container id
        f"/system.slice/crio-conmon-{CID}.scope",  # CRI-O's monitor runs on the host
        f"/machine.slice/libpod-conmon-{CID}.scope",
        f"/docker/{CID[:-1]}",  # 63 hex
        f"/docker/{CID}x",
    ],
)
def test_host_paths(path: str) -> None:
    assert parse_cgroup_path(path) is None
    assert container_id(path) == "host"


def test_pick_cgroup_prefers_container_then_v2() -> None:
    hybrid = "9:name=systemd:/\n4:memory:/process_api/ab12\n0::/user.slice/session-1.scope\n"
    assert pick_cgroup(hybrid) == "/user.slice/session-1.scope"
    v1_docker = f"5:pids:/docker/{CID}\n1:cpu:/docker/{CID}\n0::/\n"
    assert pick_cgroup(v1_docker) == f"/docker/{CID}"
    assert pick_cgroup("3:cpu:/a\n") == "/a"


def test_cgroup2_mount_found_in_real_and_written_mountinfo(tmp_path: Path) -> None:
    text = (
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n"
    )
    (tmp_path / "mountinfo").write_text(text)
    assert find_cgroup2_mount(str(tmp_path / "mountinfo")) == "/sys/fs/cgroup/unified"
    (tmp_path / "none").write_text(text.splitlines()[0] + "\n")
    assert find_cgroup2_mount(str(tmp_path / "none")) is None
    real = find_cgroup2_mount()
    if real is not None:
        assert Path(real, "cgroup.controllers").exists()


def test_docker_and_podman_metadata(tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    cdir = docker / "containers" / CID
    cdir.mkdir(parents=True)
    (cdir / "config.v2.json").write_bytes(orjson.dumps(
        {"ID": CID, "Name": "/web-1", "Config": {"Image": "nginx:1.27", "Hostname": "x"}}))
    podman = tmp_path / "podman"
    (podman / "overlay-containers").mkdir(parents=True)
    pid2 = "b" * 64
    (podman / "overlay-containers" / "containers.json").write_bytes(orjson.dumps([
        {"id": pid2, "names": ["db"], "image": "c" * 64,
         "metadata": orjson.dumps({"image-name": "docker.io/library/postgres:16",
                                   "name": "db"}).decode()},
    ]))
    meta = ContainerMetadata(docker_root=str(docker), podman_root=str(podman))
    d = meta.get(ContainerRef("docker", CID)).meta
    assert d is not None and (d.name, d.image) == ("web-1", "nginx:1.27")
    p = meta.get(ContainerRef("podman", pid2)).meta
    assert p is not None and (p.name, p.image) == ("db", "docker.io/library/postgres:16")
    k = meta.get(ContainerRef("cri-o", "d" * 64)).meta  # no CRI runtime: known to be empty
    assert k is not None and (k.name, k.image) == ("", "")
    lookups = meta.lookups
    meta.get(ContainerRef("cri-o", "d" * 64))  # negative answers are cached too
    assert meta.lookups == lookups


# ---- cgroup id -> path against the real cgroup v2 mount ---------------------------------

MOUNT = find_cgroup2_mount()


@pytest.fixture
def docker_like_cgroup() -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    if os.geteuid() != 0:
        pytest.skip("creating a cgroup needs root")
    if MOUNT is None:
        pytest.skip("no cgroup v2 mount on this machine")
    top = Path(MOUNT) / f"sysward-test-{uuid.uuid4().hex[:8]}"
    leaf = top / f"docker-{CID}.scope"
    leaf.mkdir(parents=True)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (leaf / "cgroup.procs").write_text(str(child.pid))
        yield leaf, child
    finally:
        with contextlib.suppress(OSError):
            (Path(MOUNT) / "cgroup.procs").write_text(str(child.pid))
        child.kill()
        child.wait()
        leaf.rmdir()
        top.rmdir()


def _kernfs_handle_id(path: Path) -> int | None:
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(8 + 64)
    struct.pack_into("I", buf, 0, 64)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, str(path).encode(), buf, ctypes.byref(mount_id), 0) != 0:
        return None  # no file handles here: nothing to compare
    return int(struct.unpack_from("Q", buf, 8)[0])


def test_cgroup_id_resolves_to_real_path(
    docker_like_cgroup: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    leaf, child = docker_like_cgroup
    assert MOUNT is not None
    cg_id = leaf.stat().st_ino
    # the kernel's cgroup id (what bpf_get_current_cgroup_id() reports) is the kernfs node id,
    # which name_to_handle_at() returns as the handle; it must equal the directory's inode
    assert _kernfs_handle_id(leaf) in (None, cg_id)
    rel = "/" + str(leaf.relative_to(MOUNT))
    # via the process's own /proc/<pid>/cgroup
    r1 = CgroupResolver(MOUNT)
    assert r1.resolve(cg_id, child.pid) == rel and r1.rescans == 0
    assert r1.resolve(cg_id) == rel and r1.hits == 1
    # without a pid: a rescan of the tree finds it; a second unknown id within the
    # interval does not rescan again, and is counted as a miss
    r2 = CgroupResolver(MOUNT, rescan_interval_s=60)
    assert r2.resolve(cg_id) == rel and r2.rescans == 1
    assert r2.resolve(2**40 + 12345) is None and r2.rescans == 1 and r2.misses == 1


def test_enricher_gives_container_identity_from_cgroup_id(
    docker_like_cgroup: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    leaf, child = docker_like_cgroup
    enr = Enricher()
    seeded = enr.lookup(child.pid)
    assert seeded is not None and seeded.container_id == CID[:12]  # from /proc/<pid>/cgroup
    # an exec in a new cgroup (the runtime moved the process) updates the identity
    host_pid = os.getpid()
    e = Event(ts=1, type="execve", pid=host_pid, tid=host_pid, comm="python",
              cgroup_id=leaf.stat().st_ino, args={"filename": sys.executable, "argv": ["py"]})
    enr.process(e)
    assert e.proc is not None and e.proc.container_id == CID[:12]
    assert e.proc.cgroup.endswith(f"docker-{CID}.scope")
    root_ino = Path(MOUNT or "/").stat().st_ino
    back = Event(ts=2, type="execve", pid=host_pid, tid=host_pid, comm="python",
                 cgroup_id=root_ino, args={"filename": sys.executable, "argv": ["py"]})
    enr.process(back)
    assert e.proc.container_id == "host" and e.proc.cgroup == "/"
