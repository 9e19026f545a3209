"""Run a real ``sysward run`` subprocess and collect what it says, for the agent's kernel tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from wait_scale import WAIT_SCALE

READY_MARK = "sysward: running with"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    """A real HTTP endpoint on 127.0.0.1 collecting the alerts POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AgentProcess:
    """``sysward run`` as a child; stdout JSON alerts and stderr lines are collected."""

    def __init__(self, tmp: Path, *args: str, outputs: tuple[str, ...] = ("json",),
                 env: dict[str, str] | None = None, grouping: bool = False) -> None:
        self.db = tmp / "alerts.db"
        self.port = free_port()
        # Tests see every alert on stdout unless they test alert grouping itself.
        cmd = [sys.executable, "-m", "sysward", "run", "--listen", f"127.0.0.1:{self.port}",
               "--set", f"outputs.sqlite.path={self.db}",
               "--set", f"grouping.enabled={'true' if grouping else 'false'}"]
        for o in outputs:
            cmd += ["-o", o]
        cmd += list(args)
        self.alerts: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, **(env or {})})
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()
        self._wait(lambda: any(READY_MARK in line for line in self.stderr), 30,
                   "the agent did not start")

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                self.alerts.append(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def _wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        timeout *= WAIT_SCALE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader threads catch the last lines
                raise AssertionError(f"{what}: agent exited {self.proc.returncode}:\n"
                                     + "\n".join(self.stderr[-20:]))
            time.sleep(0.05)
        raise AssertionError(f"{what} within {timeout}s; stderr:\n" + "\n".join(self.stderr[-20:]))

    def wait_alert(self, rule: str, pred: Callable[[dict[str, Any]], bool] = lambda a: True,
                   timeout: float = 8.0) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def cond() -> bool:
            found[:] = [a for a in list(self.alerts) if a["rule"] == rule and pred(a)]
            return bool(found)

        self._wait(cond, timeout, f"no alert of rule {rule!r}"
                   f" (got: {sorted({a['rule'] for a in self.alerts})})")
        return found[0]

    def has_alert(self, rule: str, pred: Callable[[dict[str, Any]], bool] = lambda a: True) -> bool:
        return any(a["rule"] == rule and pred(a) for a in list(self.alerts))

    def wait_stderr(self, text: str, timeout: float = 10.0) -> str:
        self._wait(lambda: any(text in line for line in self.stderr), timeout,
                   f"no stderr line with {text!r}")
        return next(line for line in self.stderr if text in line)

    def wait_stored(self, rule: str, pred: Callable[[str], bool] = lambda o: True,
                    timeout: float = 8.0) -> list[tuple[int, str]]:
        """(suppressed, output) of the stored alerts of ``rule`` whose output passes
        ``pred``: the store keeps every alert, the ones grouping held back included."""
        found: list[tuple[int, str]] = []

        def cond() -> bool:
            if not self.db.exists():
                return False
            try:
                with sqlite3.connect(self.db) as conn:
                    rows = conn.execute("SELECT suppressed, output FROM alerts WHERE rule = ?",
                                        (rule,)).fetchall()
            except sqlite3.OperationalError:
                return False
            found[:] = [(int(s), o) for s, o in rows if pred(o)]
            return bool(found)

        self._wait(cond, timeout, f"no stored alert of rule {rule!r}")
        return found

    def stored_rules(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.db) as conn:
            return [(r, o) for r, o in conn.execute("SELECT rule, output FROM alerts")]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds until the process was gone)."""
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout * WAIT_SCALE)
        took = time.monotonic() - t0
        for t in self._threads:
            t.join(2)
        self.assert_decoded_cleanly()
        return code, took

    def assert_decoded_cleanly(self) -> None:
        """The agent's decoder logs the first record of each type it could not decode
        (sysward.events.decoder): none may have failed, or a plan bug would only show up as
        an alert that never came."""
        bad = [line for line in self.stderr if "cannot decode a" in line]
        assert not bad, "the agent failed to decode records:\n" + "\n".join(bad)


def field(alert: dict[str, Any], name: str) -> Any:
    return alert.get("output_fields", {}).get(name)


def run_as_nobody(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, user=65534, group=65534, capture_output=True, text=True,
                          timeout=10, **kw)


def bpf_prog_ids() -> set[int]:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True,
                         check=True).stdout
    return {int(p["id"]) for p in json.loads(out or "[]")}
