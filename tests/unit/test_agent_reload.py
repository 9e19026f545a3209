"""A reload that rebuilds the outputs, on a real agent without the kernel side (no sensor is
started, so no privileges are needed): the replaced outputs deliver everything they hold,
and the alert and output counters never go backwards."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sysward.agent.engine import Agent
from sysward.agent.stats import output_samples
from sysward.alert import Alert, Priority
from sysward.config import load_config

RULES = """
- rule: Unit Reload Marker
  desc: never fires here (no kernel); the agent needs one rule to run
  condition: evt.type = openat and fd.name = /nonexistent/unit-reload-marker
  output: marker (file=%fd.name)
  priority: WARNING
"""

#: How long the receiver takes per alert: 40 alerts take ~2 s, four times the 0.5 s an
#: output gets at shutdown, so a replaced output closed with that deadline would drop most.
SLOW_S = 0.05


class SlowReceiver:
    """A real webhook on 127.0.0.1 that answers each POST after SLOW_S."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        lock = threading.Lock()
        self.received, self._lock = received, lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(SLOW_S)
                with lock:
                    received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _alert(i: int) -> Alert:
    return Alert(time=1_700_000_000_000_000_000 + i, rule="Unit Reload Marker",
                 priority=Priority.WARNING, output=f"marker n={i}", output_fields={"n": i})


def _config(path: Path, url: str, burst: int, batch: int = 10) -> None:
    path.write_text(f"""
rules_defaults: false
rules: [{path.parent / "r.yaml"}]
cri: {{enabled: false}}
server: {{enabled: false}}
grouping: {{enabled: false}}
rate_limit: {{rate: 0, burst: {burst}}}
outputs:
  stdout: {{enabled: false}}
  sqlite: {{enabled: false}}
  http: {{enabled: true, url: "{url}", flush_interval_s: 0.01, batch_size: {batch}}}
""")


def _counters(agent: Agent) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): float(s.value)
            for s in output_samples(agent.output_totals())}


def _wait(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


@pytest.mark.parametrize("change", ["rate limit", "webhook settings"])
def test_a_reload_that_rebuilds_the_outputs_loses_no_alert_and_keeps_counters(
        tmp_path: Path, change: str) -> None:
    """A changed rate limit makes a new dispatcher that keeps the webhook output as it is
    (one writer per sink); changed webhook settings replace the output, and the old one
    delivers what it holds next to the new one."""
    (tmp_path / "r.yaml").write_text(RULES)
    receiver = SlowReceiver()
    lines: list[str] = []
    config_path = tmp_path / "sysward.yaml"
    _config(config_path, receiver.url, 1000)
    agent = Agent(load_config(str(config_path), {}), config_path=str(config_path),
                  err=lines.append)
    try:
        first = agent.dispatcher
        first_http = agent.dispatcher.outputs[0]
        for i in range(40):
            agent.dispatcher.emit(_alert(i))
        before = _counters(agent)
        if change == "rate limit":
            _config(config_path, receiver.url, 1001)
        else:
            _config(config_path, receiver.url, 1000, batch=11)
        assert agent.reload(), lines
        assert agent.dispatcher is not first
        assert (agent.dispatcher.outputs[0] is first_http) == (change == "rate limit")
        # the webhook output (kept or replaced) still holds most of the 40 alerts and
        # delivers them; every counter stays where it was or grows meanwhile
        assert receiver.count() < 40
        seen, deadline = before, time.monotonic() + 10
        while receiver.count() < 40 and time.monotonic() < deadline:
            now = _counters(agent)
            assert all(now.get(k, 0.0) >= v for k, v in seen.items()), (seen, now)
            seen = now
            time.sleep(0.05)
        assert receiver.count() == 40
        for i in range(40, 45):
            agent.dispatcher.emit(_alert(i))
        assert _wait(lambda: receiver.count() >= 45, 10), receiver.count()
        assert _wait(lambda: _counters(agent)[("sysward_outputs_sent_total",
                                               (("output", "http"),))] == 45, 5)
    finally:
        agent.shutdown()
        receiver.close()
    after = _counters(agent)
    assert sorted(a["output_fields"]["n"] for a in receiver.received) == list(range(45))
    assert after[("sysward_outputs_dropped_total", (("output", "http"),))] == 0
    assert after[("sysward_outputs_failed_total", (("output", "http"),))] == 0
    assert after[("sysward_rules_alerts_total",
                  (("priority", "Warning"), ("rule", "Unit Reload Marker")))] == 45
    assert all(after.get(k, 0.0) >= v for k, v in before.items())
    final = "\n".join(lines)
    assert "alerts=45" in final and "http: sent=45 failed=0 dropped=0" in final, final


def test_reusable_outputs_are_those_whose_own_settings_did_not_change(tmp_path: Path) -> None:
    from sysward.config import apply_output_specs
    from sysward.outputs import build_outputs, reusable_outputs

    def cfg(*specs: str, **sets: Any) -> Any:
        c = load_config(None, dict(sets))
        apply_output_specs(c, list(specs))
        return c

    store = f"sqlite:{tmp_path / 'a.db'}"
    old = cfg("json", f"file:{tmp_path / 'a.jsonl'}", store)
    d = build_outputs(old)
    try:
        by_name = {o.name: o for o in d.all_outputs}
        same = reusable_outputs(d, old, cfg("json", f"file:{tmp_path / 'a.jsonl'}", store,
                                            **{"rate_limit.rate": 5}))
        assert same == {"stdout": by_name["json"], "file": by_name["file"],
                        "sqlite": by_name["sqlite"]}
        moved = reusable_outputs(d, old, cfg("stdout", f"file:{tmp_path / 'b.jsonl'}", store))
        assert moved == {"sqlite": by_name["sqlite"]}
        bigger = reusable_outputs(d, old, cfg("json", f"file:{tmp_path / 'a.jsonl'}", store,
                                              **{"outputs.queue_size": 5}))
        assert bigger == {"sqlite": by_name["sqlite"]}
        # a dispatcher built with them shares the very objects, and makes no new thread
        threads = threading.active_count()
        d2 = build_outputs(old, same)
        assert threading.active_count() == threads
        assert all(a is b for a, b in zip(d2.all_outputs, d.all_outputs, strict=True))
    finally:
        d.close(0.5)
