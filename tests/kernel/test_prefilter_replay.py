"""A real capture replays to exactly the same alerts with the prefilter as without it.

``sysward events`` records every hooked event (no prefilter) while the event generator's
host actions run, plus whatever the host does meanwhile; ``sysward replay`` then evaluates
the default rules on the capture twice: as it is, and with ``--prefilter`` (the events the
kernel prefilter would drop are dropped first, by its model), and with ``--discarders`` too
(the discarders the agent learns, modelled over an in-memory map).  The alerts must be
identical, and the prefilter must have dropped something.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from pathlib import Path

from sysward.bench import actions as act
from sysward.bench.agent import sysward_argv
from sysward.bench.generate import Workers

HOST_ACTIONS = [a for a in act.ACTIONS if a.sysward_rule is not None and a.missing() is None
                and a.place == act.HOST]


def _replay(capture: Path, *extra: str) -> tuple[list[bytes], str]:
    proc = subprocess.run([*sysward_argv(), "replay", str(capture), *extra],
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    return sorted(proc.stdout.splitlines()), proc.stderr.decode()


def test_replay_with_the_prefilter_gives_the_same_alerts(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    rec = subprocess.Popen([*sysward_argv(), "events", "--events", "all", "--output",
                            str(capture)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(4.0)  # attached
        assert rec.poll() is None, rec.stderr.read().decode() if rec.stderr else ""
        workers = Workers(HOST_ACTIONS, f"swtest{secrets.token_hex(3)}")
        try:
            ans = workers.round(0.0, 60.0, 1, 0.1)
        finally:
            workers.close()
        time.sleep(1.0)
    finally:
        rec.send_signal(signal.SIGINT)
        rec.wait(30)
    assert sum(ans["counts"].values()) >= len(HOST_ACTIONS) // 2, ans["errors"]
    plain, _ = _replay(capture)
    filtered, summary = _replay(capture, "--prefilter")
    assert len(plain) >= len(HOST_ACTIONS) // 2, "the actions raised too few alerts"
    assert filtered == plain
    assert "dropped by the kernel prefilter's model" in summary
    # and with the discarders the agent would learn meanwhile (the model drops a relative
    # spelling of a discarded path too, which the kernel does not: a stricter check)
    discarded, summary = _replay(capture, "--prefilter", "--discarders")
    assert discarded == plain
    assert "discarders learned" in summary, summary
