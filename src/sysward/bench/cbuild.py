"""Small C helpers of the benches (src/sysward/bench/c/*.c), compiled with ``cc`` at bench
time: a tight C loop measures the syscall, not an interpreter."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from sysward.errors import SyswardError

SRC_DIR = Path(__file__).with_name("c")


def build(name: str) -> Path:
    """Path of the compiled helper ``name`` (cached by source hash)."""
    src = SRC_DIR / f"{name}.c"
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise SyswardError("the bench compiles small C helpers and needs a C compiler; "
                           "install gcc or clang.")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / "sysward-bench" / f"{name}-{digest}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    proc = subprocess.run([cc, "-O2", "-Wall", "-o", str(tmp), str(src)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SyswardError(f"compiling {src.name} failed: {proc.stderr.strip()[:300]}")
    tmp.rename(out)
    return out
