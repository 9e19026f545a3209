"""Re-enactments of the behaviours that rest on exec-time facts of the kernel (fds 0..2,
the writer of a stdin pipe, the executable written since the agent started), against
``sysward run`` with its default rules, and their near misses: pipelines started from
Python in both orders of their two execs (no shell command line names them), a shell
started on a TCP socket, a program written and run below an ordinary directory of
/var/tmp; a file written by a linker, an interpreter given its program with -c, a shell on
a unix socket.  Only Python, sh and coreutils: the qemu guests run it too (unlike
test_behaviour_rules.py, whose actions need zip, curl, openssl...).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import AgentProcess
from test_behaviour_rules import _NOT_A_BUILD, Case, Scene, Sink

from sysward.rules.packaged import PACKAGED_RULES_DIR


def _wait_exec(pid: int, exe: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/exe") == exe:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} did not exec {exe}")


def _decode_into_shell(marker: str, reader_first: bool) -> None:
    """base64 -d | sh -s MARKER started from Python (no shell command line names the
    pipeline: only the kernel's view of the two processes' fds links them), the order of
    the two execs fixed by a gate.  The side that exec'd second raises the alert and names
    the other (stdin_writer= / stdout_reader=)."""
    sh = os.path.realpath("/bin/sh")
    b64 = os.path.realpath(shutil.which("base64") or "/usr/bin/base64")
    rd, wr = os.pipe()
    reader: subprocess.Popen[bytes] | None = None
    if reader_first:
        reader = subprocess.Popen(["/bin/sh", "-s", marker], stdin=rd, stdout=subprocess.DEVNULL)
        _wait_exec(reader.pid, sh)
    # the writer's gate is its stdin: `read` takes one line (shells read a pipe byte by byte)
    # and leaves the rest to base64
    writer = subprocess.Popen(["/bin/sh", "-c", f"read go; exec {b64} -d"], stdin=subprocess.PIPE,
                              stdout=wr)
    assert writer.stdin is not None
    _wait_exec(writer.pid, sh)
    writer.stdin.write(b"go\n")
    writer.stdin.flush()
    _wait_exec(writer.pid, b64)
    if reader is None:
        reader = subprocess.Popen(["/bin/sh", "-s", marker], stdin=rd, stdout=subprocess.DEVNULL)
    writer.stdin.write(b"dHJ1ZQo=\n")  # "true"
    writer.stdin.close()
    writer.wait(10)
    os.close(wr)
    reader.wait(10)
    os.close(rd)


def decoder_into_shell_writer_first(s: Scene) -> None:
    _decode_into_shell(s.marker, reader_first=False)


def decoder_into_shell_reader_first(s: Scene) -> None:
    _decode_into_shell(s.marker, reader_first=True)


def shell_on_tcp_socket(s: Scene) -> None:
    with socket.create_connection(("127.0.0.1", s.port)) as conn:
        subprocess.run(["sh", "-c", f"true {s.marker}"], stdin=conn.fileno(),
                       stdout=conn.fileno(), stderr=subprocess.DEVNULL, timeout=10, check=True)


def written_then_run_below_var_tmp(s: Scene) -> None:
    # an ordinary (not hidden) directory two levels down: only proc.exe_written tells
    d = Path("/var/tmp") / f"sw-{s.marker}"
    try:
        (d / "bin").mkdir(parents=True)
        exe = d / "bin" / s.marker
        # written by cp (this test's own comm may be pytest, a build tool the rule excepts)
        subprocess.run(["cp", "/bin/true", str(exe)], check=True, timeout=10)
        subprocess.run([str(exe)], check=True, timeout=10)
    finally:
        shutil.rmtree(d, ignore_errors=True)


CASES: dict[str, Case] = {
    "pipe-writer-first": Case("Decoded or Downloaded Content Piped to Shell",
                              decoder_into_shell_writer_first),
    "pipe-reader-first": Case("Decoded or Downloaded Content Piped to Shell",
                              decoder_into_shell_reader_first),
    "shell-on-socket": Case("Standard Stream Redirected to Network Socket", shell_on_tcp_socket),
    "written-var-tmp": Case("Program Executed from Temporary Directory",
                            written_then_run_below_var_tmp),
}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("agent")
    override = tmp / "not-a-build.yaml"
    override.write_text(_NOT_A_BUILD)
    ag = AgentProcess(tmp, "--rules", str(PACKAGED_RULES_DIR), "--rules", str(override),
                      grouping=True)
    yield ag
    ag.stop()


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def scene(tmp_path: Path, sink: Sink, request: pytest.FixtureRequest) -> Iterator[Scene]:
    marker = f"swe{os.getpid()}x{abs(hash(request.node.name)) % 10**6}"
    drop = Path("/tmp") / f".sw-{marker}"
    drop.mkdir()
    try:
        yield Scene(marker, drop, tmp_path, sink.port)
    finally:
        shutil.rmtree(drop, ignore_errors=True)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(CASES))
def test_behaviour_raises_its_alert(name: str, agent: AgentProcess, scene: Scene) -> None:
    case = CASES[name]
    case.run(scene)
    agent.wait_stored(case.rule, lambda o: scene.marker in o, timeout=10)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("reader_first", [False, True], ids=["writer-first", "reader-first"])
def test_the_side_that_execs_second_names_the_other(agent: AgentProcess, scene: Scene,
                                                    reader_first: bool) -> None:
    _decode_into_shell(scene.marker, reader_first)
    (_, out), *_ = agent.wait_stored(CASES["pipe-writer-first"].rule,
                                     lambda o: scene.marker in o, timeout=10)
    assert ("stdin_writer=base64 -d" in out) != reader_first, out
    assert (f"stdout_reader=sh -s {scene.marker}" in out) == reader_first, out


_AS_LINKER = """\
import ctypes, shutil, sys
ctypes.CDLL(None).prctl(15, b"ld", 0, 0, 0)  # PR_SET_NAME: the writer's comm is "ld"
shutil.copy("/bin/true", sys.argv[1])
"""


@pytest.mark.timeout(60)
def test_exec_fact_near_misses_raise_nothing(agent: AgentProcess, scene: Scene) -> None:
    """Near misses of the rules that rest on exec-time facts: a program written by a
    linker and run from below /var/tmp; decoded content read by an interpreter given its
    program with -c (data, not code); a shell on a unix socket."""
    rules = ("Decoded or Downloaded Content Piped to Shell",
             "Standard Stream Redirected to Network Socket",
             "Program Executed from Temporary Directory")
    d = Path("/var/tmp") / f"sw-{scene.marker}"
    try:
        d.mkdir()
        built = d / f"built-{scene.marker}"
        subprocess.run([sys.executable, "-c", _AS_LINKER, str(built)], check=True, timeout=10)
        built.chmod(0o755)
        subprocess.run([str(built)], check=True, timeout=10)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    dec = subprocess.Popen(["base64", "-d"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert dec.stdin is not None and dec.stdout is not None
    dec.stdin.write(b"dHJ1ZQo=\n")
    dec.stdin.close()
    subprocess.run([sys.executable, "-c", f"import sys; sys.stdin.read()  # {scene.marker}"],
                   stdin=dec.stdout, timeout=10, check=True)
    dec.stdout.close()
    dec.wait(10)
    a, b = socket.socketpair()
    with a, b:
        subprocess.run(["sh", "-c", f"true {scene.marker}"], stdin=a.fileno(),
                       stdout=a.fileno(), timeout=10, check=True)
    # a barrier: a program that does raise the drop rule; once its alert is stored, the
    # events of the near misses have been through the rules too
    barrier = Scene(f"{scene.marker}b", scene.drop, scene.work, scene.port)
    written_then_run_below_var_tmp(barrier)
    agent.wait_stored(rules[2], lambda o: barrier.marker in o, timeout=10)
    time.sleep(0.3)
    hits = [(r, o) for r, o in agent.stored_rules()
            if r in rules and scene.marker in o and barrier.marker not in o]
    assert hits == []
