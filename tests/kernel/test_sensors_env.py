"""Environment capture at exec is a load-time setting: off when no loaded rule reads
proc.env (the kernel then reads and sends none), on by default; a reload that brings the
first proc.env rule loads a sensor that captures it, without a gap."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import AgentProcess, field
from sensor_helpers import Collector, start


@pytest.fixture(scope="module")
def col() -> Iterator[Collector]:
    yield from start("exec", capture_env=False)


def test_exec_without_env_capture_carries_argv_but_no_env(col: Collector) -> None:
    proc = subprocess.Popen(["/bin/true", "sysward-no-env"], env={"SWTEST": "yes"})
    proc.wait()
    ev = col.of_pid(proc.pid, "execve")
    assert ev.res == 0 and ev.args["argv"] == ["/bin/true", "sysward-no-env"]
    assert "env" not in ev.args


RULE_NO_ENV = """
- rule: Test Env Probe Started
  desc: test rule that reads no environment
  condition: evt.type = execve and proc.name = swenvprobe
  output: probe started (proc=%proc.name)
  priority: WARNING
"""
RULE_ENV = """
- rule: Test Env Probe Marked
  desc: test rule that reads one environment variable
  condition: evt.type = execve and proc.name = swenvprobe and proc.env[SWTEST] = yes
  output: probe marked (value=%proc.env[SWTEST])
  priority: WARNING
"""


def test_reload_adding_a_proc_env_rule_turns_capture_on(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULE_NO_ENV)
    probe = tmp_path / "swenvprobe"
    probe.symlink_to("/bin/true")  # the task's comm is the name it was exec'd by
    env = {**os.environ, "SWTEST": "yes"}
    ag = AgentProcess(tmp_path, "-v", "--set", "rules_defaults=false", "--rules", str(rules))
    try:
        ag.wait_stderr("environment of execs: not captured")
        subprocess.run([str(probe)], env=env, check=True)
        ag.wait_alert("Test Env Probe Started")
        (rules / "b.yaml").write_text(RULE_ENV)
        ag.signal(signal.SIGHUP)
        ag.wait_stderr("reloaded")
        ag.wait_stderr("environment of execs: captured")
        subprocess.run([str(probe)], env=env, check=True)
        alert = ag.wait_alert("Test Env Probe Marked")
        assert field(alert, "proc.env[SWTEST]") == "yes"
    finally:
        code, _ = ag.stop()
    assert code == 0
