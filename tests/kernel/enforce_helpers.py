"""Shared pieces of the enforcement kernel tests: rules from text, a started enforcer, a
private cgroup v2 directory, and children that run real syscalls.

Every rule the tests load names something unique to the test (a file in its tmp dir, a copied
binary with a random name, a port it just bound), so the enforcer, which sees the whole
machine, never touches another process of the host.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from wait_scale import WAIT_SCALE

from sysward.config import EnforceConfig
from sysward.enforce import ActionReport, Enforcer
from sysward.kernel.probe import cgroup2_mount
from sysward.rules import load_rules_text


def rules(*specs: tuple[str, str, str]) -> str:
    """YAML for rules given as (name, condition, action)."""
    out = []
    for name, cond, action in specs:
        out.append(f"- rule: {name}\n  desc: test\n  condition: {cond}\n"
                   f"  output: '{name} %proc.name'\n  priority: WARNING\n  action: {action}\n")
    return "\n".join(out)


def enforcer(text: str, mode: str = "on", cgroup: str | None = None,
             never_kill: list[str] | None = None, **kw: object) -> Enforcer:
    res = load_rules_text(text)
    res.raise_for_errors()
    cfg = EnforceConfig(mode=mode, never_kill=never_kill or [], **kw)  # type: ignore[arg-type]
    enf = Enforcer.from_rules(res.ruleset, cfg, cgroup=cgroup)
    assert enf is not None
    return enf


@contextmanager
def started(enf: Enforcer) -> Iterator[Enforcer]:
    enf.start()
    try:
        yield enf
    finally:
        enf.close()


def wait_reports(enf: Enforcer, pred: Callable[[ActionReport], bool],
                 timeout: float = 2.0) -> list[ActionReport]:
    """Reports matching ``pred``, polling until at least one arrives or time runs out."""
    got: list[ActionReport] = []
    deadline = time.monotonic() + timeout * WAIT_SCALE
    while time.monotonic() < deadline:
        got += [r for r in enf.poll_actions(20) if pred(r)]
        if got:
            # a moment more: reports of the same action arrive together
            got += [r for r in enf.poll_actions(20) if pred(r)]
            return got
    return got


def copied_binary(tmp: Path, src: str, prefix: str) -> Path:
    """A copy of a system binary under a random name (its own exe path and comm)."""
    dst = tmp / f"{prefix}{uuid.uuid4().hex[:6]}"
    shutil.copy2(shutil.which(src) or src, dst)
    return dst


@contextmanager
def private_cgroup() -> Iterator[Path]:
    root = cgroup2_mount()
    assert root is not None, "no cgroup v2 mount on this host"
    cg = root / f"sysward-enf-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    cg.mkdir()
    try:
        yield cg
    finally:
        for _ in range(50):
            try:
                cg.rmdir()
                break
            except OSError:
                time.sleep(0.02)  # a child that just exited may still be listed


def run_in_cgroup(cg: Path, code: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in a child that first moves itself into cgroup ``cg``."""
    prelude = f"open({str(cg / 'cgroup.procs')!r}, 'w').write(str(__import__('os').getpid()))\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, timeout=timeout)


def listener(family: int, host: str) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(16)
    return s
