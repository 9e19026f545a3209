"""The wheel: tagged for its architecture (it carries BPF objects), and once installed its
commands find the packaged rules without being told where they are."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).parents[2]
BPF_OBJECTS = sorted((ROOT / "src" / "sysward" / "bpf").glob("*.bpf.o"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BPF_OBJECTS:
        pytest.skip("BPF objects not built; run 'make build'")
    # Built from a copy, so that the build leaves nothing in the tree.
    src = tmp_path_factory.mktemp("src") / "sysward"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "bench-out", "__pycache__", ".*_cache"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("*.whl")
    return whl


def test_wheel_is_tagged_for_this_architecture(wheel: Path) -> None:
    machine = os.uname().machine
    assert wheel.name.endswith(f"-py3-none-linux_{machine}.whl"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    for obj in BPF_OBJECTS:
        assert any(n.endswith(f"sysward/bpf/{obj.name}") for n in names), obj.name
    assert any(n.endswith("sysward/rules.d/00-macros.yaml") for n in names)
    wheel_meta = next(n for n in names if n.endswith(".dist-info/WHEEL"))
    text = zipfile.ZipFile(wheel).read(wheel_meta).decode()
    assert "Root-Is-Purelib: false" in text and f"Tag: py3-none-linux_{machine}" in text


def test_installed_wheel_finds_its_packaged_rules(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                           "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the installed copy first on the path, not this source tree
    env = {**os.environ, "PYTHONPATH": str(target)}

    def sysward(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sysward", *args], capture_output=True,
                              text=True, timeout=120, env=env, cwd=tmp_path, input=stdin)

    path = sysward("rules", "path")
    assert path.returncode == 0, path.stderr
    packaged = Path(path.stdout.strip())
    assert packaged.is_relative_to(target) and sorted(packaged.glob("*.yaml"))
    check = sysward("rules", "check")
    assert check.returncode == 0 and "errors: 0" in check.stdout, check.stdout + check.stderr
    event = orjson.dumps({"ts": 1, "type": "openat", "pid": 9, "comm": "cat", "res": 3,
                          "args": {"name": "/etc/shadow", "flags": 0}}).decode()
    replay = sysward("replay", "-", stdin=event + "\n")
    assert replay.returncode == 0, replay.stderr
    assert "replayed 1 events" in replay.stderr
