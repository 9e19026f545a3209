"""The BPF programs build for arm64 too, the other architecture the Makefile maps: syscall
arguments go through libbpf's per-architecture macros, not one architecture's registers.
(`make build` builds them for this machine, and tests/kernel loads those; loading an arm64
object needs an arm64 kernel.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SOURCES = sorted((ROOT / "bpf").glob("*.bpf.c"))


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_programs_build_for_arm64(src: Path, tmp_path: Path) -> None:
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (Makefile DEB_PKGS installs it)")
    out = tmp_path / src.name.replace(".c", ".o")
    proc = subprocess.run(
        ["clang", "-g", "-O2", "-Wall", "-Werror", "-target", "bpf", "-D__TARGET_ARCH_arm64",
         "-I", str(ROOT / "bpf"), "-c", str(src), "-o", str(out)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.stat().st_size > 0
