"""What an operator sees of a running agent: drops reported while they happen, counters that
survive a reload, what -v tells, and a rule set that would run nothing refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from agent_harness import AgentProcess

RULE_A = """
- rule: Test Marker A Opened
  desc: test rule
  condition: evt.type in (open, openat) and fd.name startswith /tmp/sysward-opmarker-a
  output: marker A opened (file=%fd.name)
  priority: WARNING
"""

RULE_MKDIR = """
- rule: Test Marker Directory Made
  desc: test rule on an event type the first rule set did not need
  condition: evt.type in (mkdir, mkdirat) and evt.arg.path startswith /tmp/sysward-opmarker-dir
  output: marker dir made (path=%evt.arg.path)
  priority: WARNING
"""


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metric(text: str, name: str, labels: str) -> float:
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} ([0-9.e+]+)$", text, re.M)
    assert m, f"{name}{{{labels}}} not in /metrics"
    return float(m.group(1))


def _flood(n: int) -> None:
    subprocess.run([sys.executable, "-c", f"""
import os
for i in range({n}):
    os.close(os.open("/dev/null", os.O_RDONLY))
"""], check=True, timeout=120)


def test_drops_are_reported_while_running(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULE_A)
    # the flood must reach user space: no rule can match it, so the kernel prefilter is off
    ag = AgentProcess(tmp_path, "--rules", str(rules), "--queue-size", "8",
                      "--set", "kernel.prefilter=false")
    try:
        _flood(50_000)
        line = ag.wait_stderr("dropping:", timeout=10)
        # counts, the stage and what to tune, while the agent still runs
        assert ag.proc.poll() is None
        assert re.search(r"dropping: \d+ of \d+ events lost in the last \d+s: \d+ because the "
                         r"rule worker fell behind", line), line
        assert "--queue-size" in line
        alert = ag.wait_alert("sysward internal: event drop")
        assert alert["source"] == "internal" and alert["priority"] == "Critical"
        assert alert["output_fields"]["n_drops_queue"] > 0
        assert alert["output_fields"]["n_drops"] >= alert["output_fields"]["n_drops_queue"]
        status, body = _get(ag.port, "/healthz")
        assert status == 200 and "dropping" in body, body
        _, metrics = _get(ag.port, "/metrics")
        assert "sysward_agent_drop_reports_total 1.0" in metrics
        # rate limited: a second flood right away makes no second line within the interval
        _flood(20_000)
        time.sleep(1.5)
        assert sum("dropping:" in x for x in ag.stderr) == 1
    finally:
        code, _ = ag.stop()
    assert code == 0
    assert ag.has_alert("sysward internal: event drop")
    assert any(r == "sysward internal: event drop" for r, _ in ag.stored_rules())


def test_no_drop_report_without_drops(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULE_A)
    ag = AgentProcess(tmp_path, "--rules", str(rules))
    try:
        _flood(2_000)
        time.sleep(2.5)
        status, body = _get(ag.port, "/healthz")
        assert status == 200 and "dropping" not in body
    finally:
        code, _ = ag.stop()
    assert code == 0 and not any("dropping" in x for x in ag.stderr)
    assert not ag.has_alert("sysward internal: event drop")


def test_kernel_counters_stay_monotonic_across_a_reload_with_new_types(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULE_A)
    ag = AgentProcess(tmp_path, "--rules", str(rules), "--stats-interval", "0.5")
    try:
        _flood(3_000)
        time.sleep(0.3)
        _, before = _get(ag.port, "/metrics")
        seen0 = _metric(before, "sysward_kernel_seen_total", 'type="openat"')
        assert seen0 >= 3_000
        (rules / "m.yaml").write_text(RULE_MKDIR)  # mkdir: a new program, a second sensor
        ag.signal(signal.SIGHUP)
        ag.wait_stderr("reloaded")
        target = f"/tmp/sysward-opmarker-dir-{os.getpid()}"
        os.mkdir(target)
        os.rmdir(target)
        ag.wait_alert("Test Marker Directory Made")
        samples = []
        for _ in range(5):
            _, text = _get(ag.port, "/metrics")
            samples.append(_metric(text, "sysward_kernel_seen_total", 'type="openat"'))
            time.sleep(0.2)
        assert samples[0] >= seen0 and samples == sorted(samples)
        assert _metric(text, "sysward_kernel_seen_total", 'type="mkdir"') >= 1
        time.sleep(1.2)  # stats lines over the reload
    finally:
        code, _ = ag.stop()
    assert code == 0
    stats = [x for x in ag.stderr if x.startswith("sysward stats:")]
    assert stats and not [x for x in stats if re.search(r"events -\d", x)], stats
    final = next(x for x in ag.stderr if x.startswith("openat "))
    assert int(final.split()[1]) >= samples[-1]  # the final table agrees with /metrics


def test_verbose_logs_decisions_and_reload_steps(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULE_A)
    ag = AgentProcess(tmp_path, "--rules", str(rules), "-v",
                      "--set", "filters.ignore_comms=[noisyd]")
    try:
        (rules / "m.yaml").write_text(RULE_MKDIR)
        ag.signal(signal.SIGHUP)
        ag.wait_stderr("reloaded")
    finally:
        code, _ = ag.stop()
    assert code == 0
    err = "\n".join(ag.stderr)
    assert "DEBUG: event type openat: 1 rules: Test Marker A Opened" in err
    assert "DEBUG: event type execve: no rule: the process table needs it" in err
    assert re.search(r"DEBUG: programs attached for \d+ event types: .*openat", err)
    assert "DEBUG: kernel filters: the agent's own pid" in err and "noisyd" in err
    for step in ("reload: reading the configuration", "reload: loading rules from",
                 "reload: 2 rules loaded", "event type mkdir: 1 rules: Test Marker Directory",
                 "reload: new event types mkdir", "reload: the reader moved to the new programs",
                 "reload: outputs unchanged"):
        assert step in err, step


def test_a_rules_directory_without_rules_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "sysward", "run", "--no-server", "--rules",
                           str(empty)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"no rule to run from {empty} (no .yaml or .yml file there)" in proc.stderr
    (empty / "off.yaml").write_text(RULE_A + "  enabled: false\n")
    proc = subprocess.run([sys.executable, "-m", "sysward", "run", "--no-server", "--rules",
                           str(empty)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "1 rules, 1 disabled" in proc.stderr


def test_an_empty_rules_directory_next_to_others_is_a_warning(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    rules = tmp_path / "a.yaml"
    rules.write_text(RULE_A)
    ag = AgentProcess(tmp_path, "--rules", str(rules), "--rules", str(empty))
    try:
        line = ag.wait_stderr("holds no .yaml or .yml file")
        assert str(empty) in line
    finally:
        code, _ = ag.stop()
    assert code == 0
