"""The process table of a real agent under real process churn: a 1 MB budget holds while a
worker execs as fast as it can, and a live process's ancestry stays right meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

from agent_harness import AgentProcess, field
from prometheus_client.parser import text_string_to_metric_families

from sysward.bench.cbuild import build

RULE = """
- rule: Test Ancestry Marker
  desc: test rule
  condition: evt.type in (open, openat) and fd.name startswith /tmp/sysward-ancestry-
  output: >
    marker (proc=%proc.name parent=%proc.pname grandparent=%proc.aname[2]
    ppid=%proc.ppid gpid=%proc.apid[2])
  priority: WARNING
"""

# a chain of three live processes, each renamed (and reporting one event under its new
# name), the youngest waiting for a line on stdin before it opens the marker file
CHAIN = """
import ctypes, os, sys
libc = ctypes.CDLL(None)
def become(name):
    libc.prctl(15, name.encode(), 0, 0, 0)
    os.close(os.open("/dev/null", os.O_RDONLY))
become("swanc_a")
if os.fork() == 0:
    become("swanc_b")
    if os.fork() == 0:
        become("swanc_c")
        print("ready", os.getppid(), flush=True)
        sys.stdin.readline()
        os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o600))
        os._exit(0)
    os.wait()
    os._exit(0)
os.wait()
"""


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {s.name: float(s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples if not s.labels}


def test_budget_holds_and_ancestry_stays_right_under_churn(tmp_path: Path) -> None:
    rules = tmp_path / "marker.yaml"
    rules.write_text(RULE)
    marker = f"/tmp/sysward-ancestry-{os.getpid()}"
    agent = AgentProcess(tmp_path, "--rules", str(rules), "--set", "process_table.max_mb=1")
    chain = None
    try:
        chain = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHAIN), marker],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert chain.stdout is not None and chain.stdin is not None
        ready = chain.stdout.readline().split()
        assert ready[0] == "ready", ready
        b_pid = int(ready[1])

        # churn: fork+exec as fast as one worker can, while the table is watched
        sizes: list[tuple[float, float]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.25):
                m = _metrics(agent.port)
                sizes.append((m["sysward_enrich_table_bytes"],
                              m["sysward_enrich_table_max_bytes"]))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        worker = subprocess.run([str(build("churn")), "4", "0", "t"], capture_output=True,
                                text=True, timeout=60)
        assert worker.returncode == 0, worker.stderr
        execs = int(worker.stdout.split()[0])
        assert execs > 1000  # enough to overflow the exited quarter of 1 MB many times
        time.sleep(1.0)
        stop.set()
        watcher.join(5)

        chain.stdin.write("go\n")
        chain.stdin.flush()
        alert = agent.wait_alert("Test Ancestry Marker",
                                 lambda a: field(a, "proc.name") == "swanc_c")
        assert field(alert, "proc.pname") == "swanc_b"
        assert field(alert, "proc.aname[2]") == "swanc_a"
        assert field(alert, "proc.apid[2]") == chain.pid
        assert field(alert, "proc.ppid") == b_pid
        assert chain.wait(10) == 0

        m = _metrics(agent.port)
        assert sizes and all(used <= budget for used, budget in sizes), sizes
        assert m["sysward_enrich_table_max_bytes"] == 1 << 20
        assert m["sysward_enrich_evictions_exited_early_total"] > 0
        assert m["sysward_enrich_exit_grace_seconds"] < 2.0
    finally:
        if chain is not None and chain.poll() is None:
            chain.kill()
        code, _ = agent.stop()
        Path(marker).unlink(missing_ok=True)
    assert code == 0
    final = "\n".join(agent.stderr)
    assert "table_bytes=" in final and "evictions_exited_early_total=" in final
