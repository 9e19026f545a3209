"""What a new user hits first: bad paths, silent no-ops, messages that name the wrong flag.

Every command that takes a path gets a path that cannot work (missing directory, a directory
where a file belongs, a file where a directory belongs): each must end in one sentence on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MISSING = "/nonexistent-sysward/dir/x"


def sysward(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sysward", *args], capture_output=True,
                          text=True, timeout=timeout)


def one_sentence(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("sysward: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


ROOT = os.geteuid() == 0

# (argv, a word the sentence must contain); `run` and `events` need root to get that far.
CASES: list[tuple[list[str], str, bool]] = [
    (["events", "--duration", "1", "--output", f"{MISSING}.jsonl"], "--output", True),
    (["events", "--duration", "1", "--output", "/tmp"], "is a directory", True),
    (["replay", f"{MISSING}.jsonl"], "no such file", False),
    (["replay", "/tmp"], "is a directory", False),
    (["replay", "/etc/hostname", "--rules", MISSING], MISSING, False),
    (["rules", "check", MISSING], MISSING, False),
    (["alerts", "--db", MISSING], "no alert store", False),
    (["alerts", "--db", "/tmp"], "is a directory", False),
    (["alerts", "--db", "/etc/hostname"], "not a sysward alert store", False),
    (["alerts", "--config", f"{MISSING}.yaml"], "does not exist", False),
    (["run", "--config", f"{MISSING}.yaml"], "does not exist", False),
    (["run", "--no-server", "--rules", MISSING], MISSING, True),
    (["run", "--no-server", "-o", "file:/proc/version/alerts.jsonl"], "alert file", True),
    (["run", "--no-server", "-o", "stdout", "-o", "sqlite:/proc/version/a.db"],
     "alert store", True),
    (["bench", "flood", "--events", "1000", "--out", "/proc/version/out"], "--out", True),
    (["bench", "generate", "--json", f"{MISSING}.json", "ReadSensitive"], "--json", False),
    (["bench", "generate", "--pid", "1", "--metrics", "127.0.0.1:1", "--alerts",
      f"{MISSING}.jsonl", "--out", "/proc/version/o", "ReadSensitive"], "--out", False),
    (["run", "--no-server", "-o", f"syslog:{MISSING}.sock"], "syslog", True),
]


@pytest.mark.parametrize(("argv", "word", "needs_root"), CASES,
                         ids=[" ".join(c[0][:3]) + " " + c[0][-1] for c in CASES])
def test_bad_path_is_one_sentence(argv: list[str], word: str, needs_root: bool) -> None:
    if needs_root and not ROOT:
        pytest.skip("needs root to get past the privilege check")
    line = one_sentence(sysward(*argv))
    assert word in line, line
    assert not Path("/nonexistent-sysward").exists()  # nothing was created on the way


@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "--ringbuf-mb", "3"], "sysward: error: --ringbuf-mb 3: must be a power of two"),
    (["run", "--min-priority", "loud"], "sysward: error: --min-priority loud: unknown priority"),
    (["run", "--queue-size", "0"], "sysward: error: --queue-size 0: must be 1 or more"),
    (["run", "--set", "kernel.ringbuf_mb=3"],
     "sysward: error: --set kernel.ringbuf_mb: 'kernel.ringbuf_mb' must be a power of two"),
    (["run", "-o", "sqlite:off"], "sysward: error: -o sqlite:off leaves no output on"),
])
def test_messages_name_the_flag_typed(argv: list[str], expected: str) -> None:
    line = one_sentence(sysward(*argv, "--no-server"))
    assert line.startswith(expected), line
    assert "--set" not in line or "--set" in argv


@pytest.mark.parametrize("argv", [["run", "--duration", "-1"], ["run", "--duration", "0"],
                                  ["events", "--duration", "-1"]])
def test_negative_duration_is_refused(argv: list[str]) -> None:
    proc = sysward(*argv)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--duration" in proc.stderr and "range" in proc.stderr


def test_every_output_off_in_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("outputs:\n  stdout: {enabled: false}\n  sqlite: {enabled: false}\n")
    line = one_sentence(sysward("run", "--config", str(cfg)))
    assert "every output is disabled" in line


def test_rules_path_and_check_default_to_the_packaged_rules() -> None:
    proc = sysward("rules", "path")
    assert proc.returncode == 0
    path = Path(proc.stdout.strip())
    assert path.is_dir() and sorted(path.glob("*.yaml"))
    check = sysward("rules", "check")
    assert check.returncode == 0, check.stdout
    assert "errors: 0" in check.stdout and " 0 loaded" not in check.stdout


def test_a_rule_error_is_said_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- rule: A\n  desc: d\n  condition: evt.type = open and proc.nme = x\n"
                   "  output: o\n  priority: INFO\n")
    line = one_sentence(sysward("run", "--no-server", "--rules", str(bad)))
    assert "bad.yaml:3:34:" in line and "did you mean 'proc.name'" in line
    assert line.count("them all") <= 1 and "rules check" not in line  # one error: no "see all"
    two = tmp_path / "two.yaml"
    two.write_text(bad.read_text() + bad.read_text().replace("rule: A", "rule: B"))
    line = one_sentence(sysward("run", "--no-server", "--rules", str(two)))
    assert "and 1 more: 'sysward rules check' on the same files lists every one." in line
