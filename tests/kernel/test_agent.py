"""``sysward run`` end to end: real processes do real things, the default rules raise alerts.

One agent (default rules, JSON on stdout, a real webhook receiver, a real sqlite file) serves
the detection tests of this module; the lifecycle tests start their own.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_harness import (
    AgentProcess,
    WebhookReceiver,
    bpf_prog_ids,
    field,
    run_as_nobody,
)
from prometheus_client.parser import text_string_to_metric_families
from wait_scale import WAIT_SCALE


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    rx = WebhookReceiver()
    yield rx
    rx.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory,
          webhook: WebhookReceiver) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("agent")
    before = bpf_prog_ids()
    ag = AgentProcess(tmp, outputs=("json", f"http:{webhook.url}"))
    ag.prog_ids_during = bpf_prog_ids() - before  # type: ignore[attr-defined]
    yield ag
    ag.stop()


def _py(code: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=20, **kw)


def test_shadow_read_by_non_root_child(agent: AgentProcess, webhook: WebhookReceiver) -> None:
    child = run_as_nobody(["cat", "/etc/shadow"])
    assert child.returncode != 0  # nobody may not read it: the attempt is what we detect
    rule = "Shadow File Opened by Unexpected Program"
    alert = agent.wait_alert(rule, lambda a: field(a, "fd.name") == "/etc/shadow"
                             and field(a, "user.uid") == 65534)
    assert alert["priority"] in ("Warning", "Error", "Critical")
    assert alert["source"] == "syscall" and alert["hostname"]
    # the same alert reached the sqlite store and the webhook
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(r == rule for r, _ in agent.stored_rules()) and \
                any(a.get("rule") == rule for a in webhook.received):
            break
        time.sleep(0.1)
    assert any(r == rule and "/etc/shadow" in out for r, out in agent.stored_rules())
    hooked = [a for a in webhook.received if a.get("rule") == rule]
    assert hooked and set(hooked[0]) >= {"time", "rule", "priority", "output", "output_fields",
                                         "tags", "hostname", "source"}


def test_write_below_usr_bin(agent: AgentProcess) -> None:
    target = Path(f"/usr/bin/sysward-test-{os.getpid()}")
    try:
        _py(f"open({str(target)!r}, 'w').write('x')")
    finally:
        target.unlink(missing_ok=True)
    agent.wait_alert("Write Below Binary Directory", lambda a: field(a, "fd.name") == str(target))


def test_server_process_spawning_a_shell(agent: AgentProcess) -> None:
    # A process that calls itself nginx (prctl PR_SET_NAME), then runs sh as a child.
    child = _py("""
        import ctypes, subprocess
        ctypes.CDLL(None).prctl(15, b"nginx", 0, 0, 0)
        subprocess.run(["/bin/sh", "-c", "true"])
        """)
    assert child.returncode == 0, child.stderr
    agent.wait_alert("Shell Spawned by Server Process",
                     lambda a: field(a, "proc.pname") == "nginx")


def test_reverse_shell_to_local_listener(agent: AgentProcess) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import os, socket
            s = socket.create_connection(("127.0.0.1", {port}))
            os.dup2(s.fileno(), 0); os.dup2(s.fileno(), 1)
            os.execv("/bin/sh", ["sh", "-c", "echo reverse"])
            """)])
        conn, _ = srv.accept()
        with conn:
            assert conn.recv(100).startswith(b"reverse")
        child.wait(10)
    agent.wait_alert("Standard Stream Redirected to Network Socket",
                     lambda a: str(port) in a["output"])


def test_fileless_memfd_exec(agent: AgentProcess) -> None:
    child = _py("""
        import os
        fd = os.memfd_create("payload", 0)
        os.write(fd, open("/bin/true", "rb").read())
        os.execv(f"/proc/self/fd/{fd}", ["payload"])
        """)
    assert child.returncode == 0, child.stderr
    agent.wait_alert("Fileless Execution from Memory File")


def test_ptrace_attach(agent: AgentProcess) -> None:
    target = subprocess.Popen(["sleep", "30"])
    try:
        child = _py(f"""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
            assert libc.ptrace(16, {target.pid}, None, None) == 0, ctypes.get_errno()
            os.waitpid({target.pid}, 0)
            libc.ptrace(17, {target.pid}, None, None)
            """)
        assert child.returncode == 0, child.stderr
    finally:
        target.kill()
        target.wait()
    agent.wait_alert("Ptrace Attach to Process",
                     lambda a: str(target.pid) in a["output"])


def test_unshare(agent: AgentProcess) -> None:
    child = subprocess.run(["unshare", "--uts", "true"], capture_output=True, timeout=10)
    assert child.returncode == 0
    agent.wait_alert("Namespace Created by Unexpected Program",
                     lambda a: field(a, "proc.name") == "unshare")


def test_metrics_and_health(agent: AgentProcess) -> None:
    import urllib.request

    base = f"http://127.0.0.1:{agent.port}"
    with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    for name in ("sysward_kernel_submitted_total", "sysward_kernel_lost_total",
                 "sysward_queue_dropped_total", "sysward_rules_alerts_total",
                 "sysward_enrich_processes", "process_resident_memory_bytes"):
        assert name in text, name


# -- lifecycle ---------------------------------------------------------------------------


RULE_A = """
- rule: Test Marker A Opened
  desc: test rule A
  condition: evt.type in (open, openat) and fd.name startswith /tmp/sysward-marker-a
  output: marker a opened (file=%fd.name)
  priority: WARNING
"""
RULE_B = """
- rule: Test Marker B Opened
  desc: test rule B
  condition: evt.type in (open, openat) and fd.name startswith /tmp/sysward-marker-b
  output: marker b opened (file=%fd.name)
  priority: WARNING
"""


def _touch(path: str) -> None:
    with open(path, "w"):
        pass
    os.unlink(path)


def test_sighup_reload_adds_a_rule_and_a_broken_reload_keeps_the_old(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULE_A)
    ag = AgentProcess(tmp_path, "--rules", str(rules))
    try:
        _touch("/tmp/sysward-marker-b1")
        _touch("/tmp/sysward-marker-a1")
        ag.wait_alert("Test Marker A Opened")
        (rules / "b.yaml").write_text(RULE_B)
        ag.signal(signal.SIGHUP)
        ag.wait_stderr("reloaded")
        _touch("/tmp/sysward-marker-b2")
        ag.wait_alert("Test Marker B Opened", lambda a: "marker-b2" in a["output"])
        assert not ag.has_alert("Test Marker B Opened", lambda a: "marker-b1" in a["output"])
        # a broken file: the reload is refused with file:line, rules A and B keep working
        (rules / "c.yaml").write_text("- rule: Broken\n  condition: evt.type = open and (\n"
                                      "  output: x\n  priority: WARNING\n  desc: d\n")
        ag.signal(signal.SIGHUP)
        line = ag.wait_stderr("reload failed")
        assert "c.yaml:" in line
        _touch("/tmp/sysward-marker-a2")
        ag.wait_alert("Test Marker A Opened", lambda a: "marker-a2" in a["output"])
    finally:
        code, _ = ag.stop()
    assert code == 0


RULE_MKDIR = """
- rule: Test Marker Directory Made
  desc: test rule on an event type the first rule set did not need
  condition: evt.type in (mkdir, mkdirat) and evt.arg.path startswith /tmp/sysward-marker-dir
  output: marker dir made (path=%evt.arg.path)
  priority: WARNING
"""


def test_reload_with_a_new_event_type_attaches_it_without_a_gap(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULE_A)
    ag = AgentProcess(tmp_path, "--rules", str(rules))
    try:
        (rules / "m.yaml").write_text(RULE_MKDIR)
        ag.signal(signal.SIGHUP)
        ag.wait_stderr("reloaded")
        target = f"/tmp/sysward-marker-dir-{os.getpid()}"
        os.mkdir(target)
        os.rmdir(target)
        ag.wait_alert("Test Marker Directory Made", lambda a: target in a["output"])
        _touch("/tmp/sysward-marker-a3")  # the old rules still see their events
        ag.wait_alert("Test Marker A Opened", lambda a: "marker-a3" in a["output"])
    finally:
        code, _ = ag.stop()
    assert code == 0


def test_tiny_queue_under_a_flood_counts_drops(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULE_A)
    # the flood must reach user space: no rule can match it, so the kernel prefilter is off
    ag = AgentProcess(tmp_path, "--rules", str(rules), "--queue-size", "8",
                      "--set", "kernel.prefilter=false")
    try:
        _py("""
            import os
            for i in range(50000):
                os.close(os.open("/dev/null", os.O_RDONLY))
            """)
        time.sleep(0.5)
    finally:
        code, _ = ag.stop()
    assert code == 0
    summary = next(line for line in ag.stderr if line.startswith("pipeline:"))
    dropped = int(summary.split("queue_dropped=")[1].split()[0])
    assert dropped > 0, summary


def test_rate_limit_suppresses_and_counts(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULE_A)
    ag = AgentProcess(tmp_path, "--rules", str(rules), "--set", "rate_limit.rate=1",
                      "--set", "rate_limit.burst=2")
    try:
        for i in range(20):
            _touch(f"/tmp/sysward-marker-a-rate{i}")
        ag.wait_alert("Test Marker A Opened")
        time.sleep(0.5)
    finally:
        code, _ = ag.stop()
    assert code == 0
    assert 1 <= len(ag.alerts) <= 4  # the burst (+ a refill), not all 20
    outputs = next(line for line in ag.stderr if line.startswith("outputs:"))
    suppressed = int(outputs.split("suppressed=")[1].split()[0])
    assert suppressed + len(ag.alerts) == 20, outputs
    # the store keeps every alert, suppressed or not
    assert len([r for r, _ in ag.stored_rules() if r == "Test Marker A Opened"]) == 20


def test_sigterm_exits_fast_and_leaves_no_programs(tmp_path: Path) -> None:
    before = bpf_prog_ids()
    ag = AgentProcess(tmp_path)
    ours = bpf_prog_ids() - before
    assert ours, "the agent attached no programs"
    code, took = ag.stop()
    assert code == 0
    assert took < 1.0, f"shutdown took {took:.2f}s"
    assert any(line.startswith("sysward: final counters") for line in ag.stderr)
    # The programs are switched off at once; the kernel's release of each syscall tracepoint
    # waits for a grace period, which a child of the agent sits out after the agent has gone
    # (docs/performance.md): they must all be gone shortly after.
    deadline = time.monotonic() + 15
    while bpf_prog_ids() & ours and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (bpf_prog_ids() & ours)


def test_without_bpf_capabilities_one_sentence_and_nothing_created(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    proc = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--bounding-set=-bpf,-sys_admin,-perfmon",
         sys.executable, "-m", "sysward", "run", "--duration", "1",
         "--set", f"outputs.sqlite.path={db}"],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "CAP_BPF" in lines[0], proc.stderr
    assert not db.exists()


# -- enforcement through the agent -----------------------------------------------------------


def _kill_rule(binary: Path) -> str:
    return f"""
- rule: Forbidden Test Binary
  desc: test rule that kills one binary at exec
  condition: evt.type in (execve, execveat) and proc.exepath = {binary}
  output: forbidden binary started (exe=%proc.exepath pid=%proc.pid)
  priority: CRITICAL
  action: kill
"""


@pytest.mark.parametrize("mode", ["on", "audit"])
def test_kill_rule_through_the_agent(tmp_path: Path, mode: str) -> None:
    binary = tmp_path / "forbidden-touch"
    binary.write_bytes(Path("/usr/bin/touch").read_bytes())
    binary.chmod(0o755)
    rules = tmp_path / "kill.yaml"
    rules.write_text(_kill_rule(binary))
    marker = tmp_path / "marker"
    ag = AgentProcess(tmp_path, "--rules", str(rules), "--set", f"enforce.mode={mode}")
    try:
        child = subprocess.run([str(binary), str(marker)], timeout=10)
        alert = ag.wait_alert("Forbidden Test Binary")
    finally:
        code, _ = ag.stop()
    assert code == 0
    if mode == "on":
        assert child.returncode == -signal.SIGKILL
        assert not marker.exists()  # touch never ran an instruction of its own
        assert alert["action_taken"] == "killed"
    else:
        assert child.returncode == 0 and marker.exists()
        assert alert["action_taken"] == "would-kill"


def test_unenforceable_kill_rule_is_refused_with_a_sentence(tmp_path: Path) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text("""
- rule: Kill By Cmdline
  desc: cmdline is not something the kernel can test
  condition: evt.type = execve and proc.cmdline contains evil
  output: x
  priority: WARNING
  action: kill
""")
    proc = subprocess.run([sys.executable, "-m", "sysward", "run", "--rules", str(rules),
                           "--set", "enforce.mode=on", "--duration", "1", "--no-server",
                           "--set", f"outputs.sqlite.path={tmp_path / 'a.db'}"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Kill By Cmdline" in proc.stderr and "proc.cmdline" in proc.stderr


def _output_counters(port: int) -> dict[tuple[str, str], float]:
    """(metric, output or rule) -> value of the alert and output counters on /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith(("sysward_outputs_", "sysward_rules_alerts")):
                out[(s.name, s.labels.get("output") or s.labels.get("rule", ""))] = s.value
    return out


def test_alerts_in_flight_across_reloads_reach_the_outputs(tmp_path: Path) -> None:
    """Reloads that rebuild the outputs while matching events stream in: every match reaches
    both outputs exactly once, however slow the worker and the outputs are (the worker takes
    the new stages between two batches, the replaced outputs deliver what they hold before
    they close), and no alert or output counter goes back across a reload.  The test waits
    on the outputs' own counts, not on the clock, so it holds under emulation too."""
    rules = tmp_path / "r.yaml"
    rules.write_text(RULE_A)
    config = tmp_path / "sysward.yaml"
    config.write_text("rate_limit:\n  rate: 0\n  burst: 1000\n")
    n = 3000
    ag = AgentProcess(tmp_path, "--config", str(config), "--rules", str(rules))

    def flight_alerts() -> tuple[int, int]:
        """(alerts of the flood on stdout, in the store)"""
        on_stdout = sum(1 for a in list(ag.alerts) if a["rule"] == "Test Marker A Opened"
                        and "marker-a-flight" in a["output"])
        try:
            stored = sum(1 for r, o in ag.stored_rules() if r == "Test Marker A Opened"
                         and "marker-a-flight" in o)
        except sqlite3.OperationalError:  # not created yet, or busy for a moment
            stored = 0
        return on_stdout, stored

    scrapes: list[dict[tuple[str, str], float]] = []
    try:
        flood = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import os, time
            for i in range({n}):
                os.close(os.open(f"/tmp/sysward-marker-a-flight-{{i % 7}}",
                                 os.O_WRONLY | os.O_CREAT, 0o600))
                if i % 100 == 0:
                    time.sleep(0.01)
            for i in range(7):
                os.unlink(f"/tmp/sysward-marker-a-flight-{{i}}")
            """)])
        for burst in (1001, 1002, 1003):  # a changed rate limit rebuilds the dispatcher
            time.sleep(0.15)
            scrapes.append(_output_counters(ag.port))
            config.write_text(f"rate_limit:\n  rate: 0\n  burst: {burst}\n")
            ag.signal(signal.SIGHUP)
            ag.wait_stderr("reloaded", timeout=10)
            ag.stderr = [line for line in ag.stderr if "reloaded" not in line]
            scrapes.append(_output_counters(ag.port))
        assert flood.wait(30 * WAIT_SCALE) == 0
        # every alert delivered to both outputs: a count, reached however long it takes
        deadline = time.monotonic() + 120 * WAIT_SCALE
        while flight_alerts() != (n, n) and time.monotonic() < deadline:
            scrapes.append(_output_counters(ag.port))
            time.sleep(0.2)
        scrapes.append(_output_counters(ag.port))
    finally:
        code, _ = ag.stop()
    assert code == 0
    assert not [line for line in ag.stderr if "reload failed" in line]
    final = "\n".join(ag.stderr)
    assert flight_alerts() == (n, n), (flight_alerts(), final[-2000:])
    for before, after in zip(scrapes, scrapes[1:], strict=False):
        went_back = {k: (v, after.get(k, 0.0)) for k, v in before.items()
                     if after.get(k, 0.0) < v}
        assert not went_back, went_back
    last = scrapes[-1]
    assert last[("sysward_rules_alerts_total", "Test Marker A Opened")] >= n
    assert last[("sysward_outputs_sent_total", "sqlite")] >= n
    assert last[("sysward_outputs_sent_total", "json")] >= n
