"""Discarders through a real agent: real opens of paths a ``contains`` rule cannot match.

The rule's test (``fd.name contains``) is one the kernel cannot make, so its approver passes
every openat; after the first open of a path the agent proves that no event on that path can
match and writes it into the sensor's map.  The second and later opens are then rejected in
the kernel (``sysward_kernel_discarded_total``), an open that should alert still alerts, a
reload removes every discarder (and a path the new rules match alerts again), and the map
stays within its bound, the evictions counted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from agent_harness import AgentProcess
from wait_scale import WAIT_SCALE

from sysward.enforce.prefilter.discarders import DISC_PATH

RULE = """
- rule: Disc Secret Opened
  desc: a test the kernel cannot make
  condition: evt.type in (open, openat) and fd.name contains sw-disc-secret and
    not proc.name = sw-disc-nobody
  output: secret opened (file=%fd.name)
  priority: WARNING
"""
RULE_PLAIN3 = """
- rule: Disc Plain3 Opened
  desc: the reloaded rules match a path the old ones had discarded
  condition: evt.type in (open, openat) and fd.name contains plain-3.
  output: plain3 opened (file=%fd.name)
  priority: WARNING
"""


def _metrics(ag: AgentProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{ag.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def _wait_metric(ag: AgentProcess, name: str, pred, timeout: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout * WAIT_SCALE
    v = 0.0
    while time.monotonic() < deadline:
        v = _metrics(ag).get(name, 0.0)
        if pred(v):
            return v
        time.sleep(0.1)
    raise AssertionError(f"{name} = {v} after {timeout}s")


def _open(path: Path, n: int = 1) -> None:
    for _ in range(n):
        os.close(os.open(path, os.O_RDONLY))


def _kernel_keys() -> list[bytes]:
    """The paths in the sensor's discarder map (bpftool; one agent runs under the lock).

    The maps of an agent that just exited can still be listed for a moment (the kernel frees
    them after the last reference goes, asynchronously); bpftool then dumps every map of the
    name, each with its id and elements.  The newest map is this test's agent's."""
    out = subprocess.run(["bpftool", "-j", "map", "dump", "name", "pf_discard"],
                         capture_output=True, text=True, check=False).stdout
    entries = json.loads(out or "[]")
    if entries and "elements" in entries[0]:
        entries = max(entries, key=lambda m: int(m["id"]))["elements"]
    keys: list[bytes] = []
    for entry in entries:
        raw = bytes(int(b, 16) for b in entry["key"])
        keys.append(raw[4:4 + DISC_PATH].split(b"\0", 1)[0])
    return keys


DISCARDED = 'sysward_kernel_discarded_total{type="openat"}'
ADDED = "sysward_discarders_added_total"


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, list[Path], Path]:
    base = Path(os.path.realpath(tmp_path)) / "d"
    base.mkdir()
    plain = [base / f"plain-{i}.txt" for i in range(20)]
    for p in plain:
        p.write_text("x")
    secret = base / "sw-disc-secret.txt"
    secret.write_text("x")
    return base, plain, secret


def test_second_opens_are_rejected_in_the_kernel_and_alerts_still_come(
        tmp_path: Path, files: tuple[Path, list[Path], Path]) -> None:
    base, plain, secret = files
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULE)
    ag = AgentProcess(tmp_path, "--rules", str(rules))
    try:
        for p in plain:
            _open(p)
        added = _wait_metric(ag, ADDED, lambda v: v >= len(plain))
        keys = set(_kernel_keys())
        assert {str(p).encode() for p in plain} <= keys
        assert str(secret).encode() not in keys
        before = _metrics(ag).get(DISCARDED, 0.0)
        rounds = 4
        for _ in range(rounds):
            for p in plain:
                _open(p)
        after = _wait_metric(ag, DISCARDED, lambda v: v - before >= rounds * len(plain))
        assert after - before >= rounds * len(plain)
        # a path that should alert still alerts, every time
        _open(secret, 3)
        ag._wait(lambda: sum(1 for a in ag.alerts if a["rule"] == "Disc Secret Opened"
                             and str(secret) in a["output"]) >= 3, 8, "3 secret alerts")
        assert str(secret).encode() not in set(_kernel_keys())
        # and the plain paths still match nothing (nothing learned twice)
        assert _metrics(ag)[ADDED] >= added
        assert not ag.has_alert("Disc Secret Opened", lambda a: "plain-" in a["output"])
    finally:
        code, _ = ag.stop()
    assert code == 0
    assert any(line.startswith("discarders: hits=") for line in ag.stderr), ag.stderr[-12:]


def test_reload_clears_the_discarders(tmp_path: Path,
                                      files: tuple[Path, list[Path], Path]) -> None:
    base, plain, _ = files
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULE)
    ag = AgentProcess(tmp_path, "--rules", str(rules))
    try:
        for p in plain:
            _open(p)
        _wait_metric(ag, ADDED, lambda v: v >= len(plain))
        assert str(plain[3]).encode() in set(_kernel_keys())
        (rules / "p3.yaml").write_text(RULE_PLAIN3)
        ag.signal(signal.SIGHUP)
        ag.wait_stderr("reloaded")
        m = _metrics(ag)
        assert m["sysward_discarders_cleared_total"] >= len(plain)
        assert str(plain[3]).encode() not in set(_kernel_keys())
        # the path the new rules match reaches them again
        _open(plain[3])
        ag.wait_alert("Disc Plain3 Opened", lambda a: "plain-3." in a["output"])
        # and the others are learned again under the new rules
        for p in plain:
            _open(p)
        _wait_metric(ag, ADDED, lambda v: v >= m[ADDED] + len(plain) - 1)
        assert str(plain[3]).encode() not in set(_kernel_keys())
    finally:
        code, _ = ag.stop()
    assert code == 0


def test_the_map_is_bounded_and_evictions_are_counted(tmp_path: Path) -> None:
    base = Path(os.path.realpath(tmp_path)) / "many"
    base.mkdir()
    paths = [base / f"f{i}" for i in range(120)]
    for p in paths:
        p.write_text("x")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULE)
    bound = 32
    ag = AgentProcess(tmp_path, "--rules", str(rules), "--set",
                      f"kernel.discarders_max={bound}")
    try:
        for p in paths:
            _open(p)
        m0 = _wait_metric(ag, ADDED, lambda v: v >= len(paths))
        m = _metrics(ag)
        assert m["sysward_discarders_capacity"] == bound
        assert m["sysward_discarders_live"] <= bound
        assert m["sysward_discarders_evicted_total"] >= m0 - bound
        assert m["sysward_discarders_evicted_total"] == m0 - m["sysward_discarders_live"]
        assert len(_kernel_keys()) <= bound
    finally:
        code, _ = ag.stop()
    assert code == 0
