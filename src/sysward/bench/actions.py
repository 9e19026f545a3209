"""Our own re-creations of the syscall actions of Falco's event generator.

Each action does, with real syscalls, what the event generator's action of the same name
does (its syscall sequence is described in ../shared/event-generator/ACTIONS.tsv), and names
the rule it must trigger in sysward's default rules (``sysward_rule``) and in Falco's rule
files (``falco_rule``).  Deviations from the original are deliberate and written in
``note``: everything stays safe on an operator's host (own temp dirs only, nothing deleted
that the action did not create, network only to 127.0.0.1 / ::1).

Actions run inside a bench worker process (:mod:`sysward.bench.worker`) placed either on the
host or in the *bench container*: a real cgroup named the way docker names its scopes plus
fresh mount/UTS/IPC namespaces (:mod:`sysward.bench.container`), which is what makes a
process a container for sysward (and for Falco).  Container-only actions run there.

A run returns the pids whose alerts count for it; spawned programs also carry the run marker
in their arguments, so alerts are attributed to the action even when the alert names a
grandchild (a shell that forked).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sysward.errors import SyswardError

HOST = "host"
CONTAINER = "container"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]

PTRACE_TRACEME = 0
PTRACE_ATTACH = 16
PTRACE_DETACH = 17


class ActionSkipped(Exception):
    """This action cannot run here (missing tool or privilege); the text says why."""


@dataclass
class ActionContext:
    """What an action needs: a private temp dir, the run marker, spawned children to reap."""

    tmp: Path
    marker: str
    delay_s: float = 6.0  # ReadSensitiveFileTrustedAfterStartup: the original's 6 s
    pending: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _n: int = 0

    def unique(self, what: str) -> str:
        self._n += 1
        return f"{self.marker}-{what}-{self._n}"

    def standin(self, name: str, target: str = "true") -> str:
        """A link named ``name`` to a harmless program: exec'ing it gives proc.name = name."""
        d = self.tmp / "bin"
        d.mkdir(exist_ok=True)
        link = d / name
        if not link.exists():
            real = shutil.which(target)
            if real is None:
                raise ActionSkipped(f"{target} not found")
            link.symlink_to(real)
        return str(link)

    def reap(self) -> None:
        for p in self.pending:
            with contextlib.suppress(Exception):
                p.wait(timeout=max(self.delay_s + 5.0, 5.0))
        self.pending.clear()


@dataclass(frozen=True)
class Action:
    name: str  # syscall.<Name>, as in the event generator
    sysward_rule: str | None  # None: sysward's default rules have none for it (reported)
    falco_rule: str | None
    falco_file: str | None
    place: str  # HOST or CONTAINER
    default: bool  # enabled by default in the event generator
    run: Callable[[ActionContext], list[int]] | None  # None: skipped, see skip
    note: str = ""
    skip: str = ""  # why it is not run (set when run is None)
    needs: tuple[str, ...] = ()  # programs that must exist

    @property
    def short(self) -> str:
        return self.name.split(".", 1)[1]

    def missing(self) -> str | None:
        """Why this action cannot run on this machine, or None."""
        if self.run is None:
            return self.skip
        for prog in self.needs:
            if shutil.which(prog) is None:
                return f"needs {prog}, which is not installed"
        return None


# -- helpers ------------------------------------------------------------------------------


def _spawn(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run a program to completion (posix_spawn: no Python fork) and return its pid."""
    path = argv[0] if "/" in argv[0] else shutil.which(argv[0])
    if path is None:
        raise ActionSkipped(f"{argv[0]} not found")
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        pid = os.posix_spawn(path, argv, env if env is not None else os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                           (os.POSIX_SPAWN_DUP2, devnull, 1),
                                           (os.POSIX_SPAWN_DUP2, devnull, 2)])
    finally:
        os.close(devnull)
    os.waitpid(pid, 0)
    return pid


def _create_excl_unlink(path: str) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(path)


def _fresh_dir(ctx: ActionContext, what: str, parent: Path | None = None) -> Path:
    d = (parent or ctx.tmp) / ctx.unique(what)
    d.mkdir()
    return d


# -- the actions ----------------------------------------------------------------------------


def clear_log_activities(ctx: ActionContext) -> list[int]:
    # The original truncates <tmp>/syslog, which Falco counts as a log by its file name;
    # sysward's rule looks at /var/log, so our temp dir lives there (and is removed).
    base = Path("/var/log")
    d = _fresh_dir(ctx, "ClearLogActivities", base if base.is_dir() else None)
    try:
        os.close(os.open(d / "syslog", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return [os.getpid()]


def create_hardlink_over_sensitive_files(ctx: ActionContext) -> list[int]:
    # A hard link needs the same file system as /etc: /var/tmp rather than a tmpfs /tmp.
    d = _fresh_dir(ctx, "CreateHardlinkOverSensitiveFiles", Path("/var/tmp"))
    try:
        link = d / "shadow_link"
        pid = _spawn(["ln", "-v", "/etc/shadow", str(link)])
        with contextlib.suppress(OSError), open(link, "rb") as f:
            f.read(1)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return [pid, os.getpid()]


def create_symlink_over_sensitive_files(ctx: ActionContext) -> list[int]:
    d = _fresh_dir(ctx, "CreateSymlinkOverSensitiveFiles")
    try:
        pid = _spawn(["ln", "-s", "/etc", str(d / "etc_link")])
        os.listdir(d / "etc_link")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return [pid, os.getpid()]


def detect_release_agent_file_container_escapes(ctx: ActionContext) -> list[int]:
    d = _fresh_dir(ctx, "DetectReleaseAgentFileContainerEscapes")
    try:
        pid = _spawn(["sh", "-c", f"cd {d} && echo 'hello world' > release_agent"])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return [pid]


def directory_traversal_monitored_file_read(ctx: ActionContext) -> list[int]:
    os.close(os.open("/etc/../etc/../etc/shadow", os.O_RDONLY))
    return [os.getpid()]


def disallowed_ssh_connection_non_standard_port(ctx: ActionContext) -> list[int]:
    # The original dials example.com:443; we dial the loopback only, and give up at once.
    pid = _spawn(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=1",
                  "-o", "StrictHostKeyChecking=no", "-p", "443", f"{ctx.marker}@127.0.0.1"])
    return [pid]


def execution_from_dev_shm(ctx: ActionContext) -> list[int]:
    path = f"/dev/shm/{ctx.unique('ExecutionFromDevShm')}.sh"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
    try:
        os.write(fd, b"#!/bin/sh\n\necho 'hello world'\n")
        os.close(fd)
        pid = _spawn(["sh", "-c", path])
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return [pid]


_TRUE_BYTES: bytes | None = None


def fileless_execution_via_memfd_create(ctx: ActionContext) -> list[int]:
    global _TRUE_BYTES
    if _TRUE_BYTES is None:
        true = shutil.which("true")
        if true is None:
            raise ActionSkipped("true not found")
        _TRUE_BYTES = Path(true).read_bytes()
    fd = os.memfd_create("program", 0)
    try:
        os.write(fd, _TRUE_BYTES)
        pid = os.posix_spawn(f"/proc/self/fd/{fd}", ["program", ctx.marker], os.environ)
        os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return [pid]


def find_aws_credentials(ctx: ActionContext) -> list[int]:
    return [_spawn(["find", str(ctx.tmp), "-maxdepth", "1", "-iname", ".aws/credentials"])]


def launch_suspicious_network_tool(ctx: ActionContext) -> list[int]:
    # nmap's exec is what is detected; a stand-in named nmap with the original's arguments
    # (aimed at the loopback) does that exec without scanning anything.
    return [_spawn([ctx.standin("nmap"), "-sn", "127.0.0.1/32", ctx.marker])]


def netcat_remote_code_execution(ctx: ActionContext) -> list[int]:
    return [_spawn([ctx.standin("nc"), "-e", "/bin/sh", "127.0.0.1", "22", ctx.marker])]


def packet_socket_created(ctx: ActionContext) -> list[int]:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0x0300)  # ETH_P_ALL, network order
    s.close()
    return [os.getpid()]


def _traceme() -> None:
    _libc.ptrace(PTRACE_TRACEME, 0, None, None)


def ptrace_anti_debug_attempt(ctx: ActionContext) -> list[int]:
    p = subprocess.Popen(["sleep", "3600"], preexec_fn=_traceme,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return [p.pid]


def ptrace_attached_to_process(ctx: ActionContext) -> list[int]:
    p = subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL)
    try:
        if _libc.ptrace(PTRACE_ATTACH, p.pid, None, None) == 0:
            os.waitpid(p.pid, os.WUNTRACED)
            _libc.ptrace(PTRACE_DETACH, p.pid, None, None)
    finally:
        p.kill()
        p.wait()
    return [os.getpid()]


def read_sensitive_file_trusted_after_startup(ctx: ActionContext) -> list[int]:
    # A process named httpd that has run for a while, then opens /etc/shadow itself (the
    # shell's `exec 3<` is an open by the shell): started in the background, reaped at the
    # end of the round.
    httpd = ctx.standin("httpd", "sh")
    p = subprocess.Popen([httpd, "-c", f"sleep {ctx.delay_s}; exec 3</etc/shadow", ctx.marker],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    ctx.pending.append(p)
    return [p.pid]


def read_sensitive_file_untrusted(ctx: ActionContext) -> list[int]:
    os.close(os.open("/etc/shadow", os.O_RDONLY))
    return [os.getpid()]


def remove_bulk_data_from_disk(ctx: ActionContext) -> list[int]:
    path = ctx.tmp / ctx.unique("RemoveBulkDataFromDisk")
    path.write_text("bulk data content")
    return [_spawn(["shred", "-u", str(path)])]


def run_shell_untrusted(ctx: ActionContext) -> list[int]:
    # "httpd" (a shell under that name) starts sh; the trailing `true` keeps it from exec'ing
    # the inner shell in place, so sh's parent really is httpd.
    httpd = ctx.standin("httpd", "sh")
    return [_spawn([httpd, "-c", f"sh -c 'ls > /dev/null' {ctx.marker}; true"])]


def search_private_keys_or_passwords(ctx: ActionContext) -> list[int]:
    return [_spawn(["find", str(ctx.tmp), "-maxdepth", "1", "-iname", "id_rsa"])]


def _become_daemon() -> None:
    os.setgid(1)
    os.setuid(1)


def system_user_interactive(ctx: ActionContext) -> list[int]:
    p = subprocess.Popen(["login", ctx.marker], preexec_fn=_become_daemon,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return [p.pid]


def change_thread_namespace(ctx: ActionContext) -> list[int]:
    # setns(0, 0): bogus arguments, fails with EINVAL; the attempt is what is detected.
    _libc.setns(0, 0)
    return [os.getpid()]


def change_namespace_privileges_via_unshare(ctx: ActionContext) -> list[int]:
    # `unshare` with no namespace flags, then it runs $SHELL on an empty stdin.
    env = dict(os.environ, SHELL="/bin/true")
    return [_spawn(["unshare"], env=env)]


def write_below_binary_dir(ctx: ActionContext) -> list[int]:
    _create_excl_unlink(f"/bin/{ctx.unique('WriteBelowBinaryDir')}")
    return [os.getpid()]


def write_below_etc(ctx: ActionContext) -> list[int]:
    _create_excl_unlink(f"/etc/{ctx.unique('WriteBelowEtc')}")
    return [os.getpid()]


def modify_shell_configuration_file(ctx: ActionContext) -> list[int]:
    d = _fresh_dir(ctx, "ModifyShellConfigurationFile")
    try:
        fd = os.open(d / ".bashrc", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"# written by sysward bench\n")
        os.close(fd)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return [os.getpid()]


def delete_or_rename_shell_history(ctx: ActionContext) -> list[int]:
    d = _fresh_dir(ctx, "DeleteOrRenameShellHistory")
    try:
        os.close(os.open(d / "ash_history", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        # The original's file has no leading dot; shells write .ash_history, which is what
        # sysward's rule (and a real attacker) deletes.
        os.close(os.open(d / ".ash_history", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.unlink(d / "ash_history")
        os.unlink(d / ".ash_history")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return [os.getpid()]


def adding_ssh_keys_to_authorized_keys(ctx: ActionContext) -> list[int]:
    d = _fresh_dir(ctx, "SshDirectory")  # the original uses /home; a temp dir is enough
    try:
        (d / ".ssh").mkdir(mode=0o755)
        fd = os.open(d / ".ssh" / "authorized_keys", os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        os.write(fd, b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC sysward-bench\n")
        os.close(fd)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return [os.getpid()]


def set_setuid_or_setgid_bit(ctx: ActionContext) -> list[int]:
    path = ctx.tmp / ctx.unique("SetSetuidOrSetgidBit")
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        pid = _spawn(["chmod", "u+s", str(path)])
    finally:
        path.unlink()
    return [pid]


def detect_crypto_miners_using_stratum(ctx: ActionContext) -> list[int]:
    # The original's arguments lack the "://" of a real pool URL; sysward looks for the URL.
    return [_spawn(["echo", "-o stratum+tcp://127.0.0.1:3333", "-u user", "-p pass", ctx.marker])]


def glibc_tunables_misuse(ctx: ActionContext) -> list[int]:
    # A real CVE-2023-4911 string nests an assignment inside a value; the original's value
    # (hwcaps/secrets) does not, and sysward's exploit rule looks for the nesting.
    env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.mxfast=glibc.malloc.mxfast=A")
    return [_spawn(["sh", "-c", f"id > /dev/null # {ctx.marker}"], env=env)]


def _mount_attempt() -> None:
    # A bogus file system type: fails with ENODEV, nothing is mounted.
    _libc.mount(b"none", b"/tmp", b"sysward-bench-nofs", 0, None)


def mount_launched_in_privileged_container(ctx: ActionContext) -> list[int]:
    # The original execs `mount -o` (a usage error, no mount(2)); sysward watches the
    # mount(2) call itself, so we make the attempt, with a file system type that does not
    # exist.
    _mount_attempt()
    return [os.getpid()]


def launch_package_management_process_in_container(ctx: ActionContext) -> list[int]:
    return [_spawn(["apt-get", "--version", ctx.marker])]


def non_sudo_setuid(ctx: ActionContext) -> list[int]:
    # A logged-in (loginuid 1000) process of uid daemon keeps root as saved uid and switches
    # back with setuid(0): the switch succeeds, which is what sysward's rule wants to see.
    def child() -> None:
        with open("/proc/self/loginuid", "w") as f:
            f.write("1000")
        os.setresgid(1, 1, 0)
        os.setresuid(1, 1, 0)
        os.setuid(0)

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        code = 0
        try:
            child()
        except OSError as exc:
            os.write(w, str(exc).encode())
            code = 1
        os._exit(code)
    os.close(w)
    err = os.read(r, 512).decode()
    os.close(r)
    os.waitpid(pid, 0)
    if err:
        raise ActionSkipped(f"setuid sequence refused: {err}")
    return [pid]


def _e(name: str, sysward_rule: str | None, falco_rule: str, falco_file: str,
       run: Callable[[ActionContext], list[int]] | None, *, place: str = HOST,
       default: bool = True, note: str = "", skip: str = "",
       needs: Iterable[str] = ()) -> Action:
    return Action(f"syscall.{name}", sysward_rule, falco_rule, falco_file, place, default, run,
                  note, skip, tuple(needs))


FR = "falco_rules"
FI = "falco-incubating_rules"
FS = "falco-sandbox_rules"

ACTIONS: tuple[Action, ...] = (
    # The 23 actions the event generator runs by default.
    _e("ClearLogActivities", "Log File Truncated", "Clear Log Activities", FR,
       clear_log_activities, note="temp dir under /var/log instead of $TMPDIR"),
    _e("CreateHardlinkOverSensitiveFiles", "Hard Link Created to Sensitive File",
       "Create Hardlink Over Sensitive Files", FR, create_hardlink_over_sensitive_files,
       needs=["ln"], note="link under /var/tmp (same file system as /etc), not $TMPDIR"),
    _e("CreateSymlinkOverSensitiveFiles", "Symbolic Link Created to Sensitive File",
       "Create Symlink Over Sensitive Files", FR, create_symlink_over_sensitive_files,
       needs=["ln"]),
    _e("DebugfsLaunchedInPrivilegedContainer", None,
       "Debugfs Launched in Privileged Container", FR, None,
       skip="no sysward rule for debugfs, and the bench container is not a privileged one"),
    _e("DetectReleaseAgentFileContainerEscapes", "Kernel Callback File Written",
       "Detect release_agent File Container Escapes", FR,
       detect_release_agent_file_container_escapes, place=CONTAINER, needs=["sh"],
       note="in a temp cwd, removed afterwards"),
    _e("DirectoryTraversalMonitoredFileRead", "Shadow File Opened by Unexpected Program",
       "Directory traversal monitored file read", FR, directory_traversal_monitored_file_read),
    _e("DisallowedSSHConnectionNonStandardPort", "SSH Client Connected to Non-Standard Port",
       "Disallowed SSH Connection Non Standard Port", FR,
       disallowed_ssh_connection_non_standard_port, needs=["ssh"],
       note="ssh to 127.0.0.1:443 instead of example.com"),
    _e("DropAndExecuteNewBinaryInContainer", "Drifted Binary Executed in Container",
       "Drop and execute new binary in container", FR, None,
       skip="needs an image's overlayfs upper layer; the bench container has no image"),
    _e("ExecutionFromDevShm", "Execution from Shared Memory Directory",
       "Execution from /dev/shm", FR, execution_from_dev_shm, needs=["sh"]),
    _e("FilelessExecutionViaMemfdCreate", "Fileless Execution from Memory File",
       "Fileless execution via memfd_create", FR, fileless_execution_via_memfd_create,
       note="executes a memfd copy of true rather than of the generator itself"),
    _e("FindAwsCredentials", "Search for Cloud Credentials", "Find AWS Credentials", FR,
       find_aws_credentials, needs=["find"]),
    _e("LaunchSuspiciousNetworkToolOnHost", "Network Scanner Executed",
       "Launch Suspicious Network Tool on Host", FI, launch_suspicious_network_tool,
       note="a stand-in named nmap (true) with nmap's arguments aimed at 127.0.0.1"),
    _e("MountLaunchedInPrivilegedContainer", "Mount Inside Container",
       "Mount Launched in Privileged Container", FI, mount_launched_in_privileged_container,
       place=CONTAINER, note="a mount(2) attempt with a non-existent fs type"),
    _e("NetcatRemoteCodeExecutionInContainer", "Netcat Started with Command Execution",
       "Netcat Remote Code Execution in Container", FR, netcat_remote_code_execution,
       place=CONTAINER, note="a stand-in named nc (true); target 127.0.0.1"),
    _e("PacketSocketCreatedInContainer", "Packet Socket Created in Container",
       "Packet socket created in container", FR, packet_socket_created, place=CONTAINER),
    _e("PtraceAntiDebugAttempt", "Ptrace Traceme Outside Debugger",
       "PTRACE anti-debug attempt", FR, ptrace_anti_debug_attempt, needs=["sleep"]),
    _e("PtraceAttachedToProcess", "Ptrace Attach to Process", "PTRACE attached to process",
       FR, ptrace_attached_to_process, needs=["sleep"]),
    _e("ReadSensitiveFileTrustedAfterStartup", "Shadow File Opened by Unexpected Program",
       "Read sensitive file trusted after startup", FR,
       read_sensitive_file_trusted_after_startup, needs=["sh", "sleep"],
       note="a shell named httpd opens /etc/shadow after the delay; runs in the background"),
    _e("ReadSensitiveFileUntrusted", "Shadow File Opened by Unexpected Program",
       "Read sensitive file untrusted", FR, read_sensitive_file_untrusted),
    _e("RemoveBulkDataFromDisk", "Data Destruction Tool Executed",
       "Remove Bulk Data from Disk", FR, remove_bulk_data_from_disk, needs=["shred"]),
    _e("RunShellUntrusted", "Shell Spawned by Server Process", "Run shell untrusted", FR,
       run_shell_untrusted, needs=["sh", "ls"], note="a shell named httpd starts sh"),
    _e("SearchPrivateKeysOrPasswords", "Search for Private Keys",
       "Search Private Keys or Passwords", FR, search_private_keys_or_passwords,
       needs=["find"]),
    _e("SystemUserInteractive", "System Account Used Interactively",
       "System user interactive", FR, system_user_interactive, needs=["login"],
       note="login run as daemon (uid 1), without a tty, as in the original"),
    # Not run by the event generator by default; here because sysward has a rule for them
    # (the first two with ReadSensitiveFileUntrusted are the Falco performance study's set).
    _e("ChangeThreadNamespace", "Namespace Changed Inside Container",
       "Change thread namespace", FI, change_thread_namespace, place=CONTAINER,
       default=False, note="in the bench container: sysward's setns rule is container-only"),
    _e("WriteBelowBinaryDir", "Write Below Binary Directory", "Write below binary dir", FS,
       write_below_binary_dir, default=False),
    _e("WriteBelowEtc", "Write Below Etc", "Write below etc", FS, write_below_etc,
       default=False),
    _e("ChangeNamespacePrivilegesViaUnshare", "Namespace Created by Unexpected Program",
       "Change namespace privileges via unshare", FI, change_namespace_privileges_via_unshare,
       default=False, needs=["unshare"], note="on the host, as root"),
    _e("ModifyShellConfigurationFile", "Shell Profile Modified",
       "Modify Shell Configuration File", FI, modify_shell_configuration_file, default=False),
    _e("DeleteOrRenameShellHistory", "Shell History Deleted", "Delete or rename shell history",
       FI, delete_or_rename_shell_history, default=False,
       note="also deletes .ash_history (with the dot shells use)"),
    _e("AddingSshKeysToAuthorizedKeys", "SSH Authorized Keys Modified",
       "Adding ssh keys to authorized_keys", FI, adding_ssh_keys_to_authorized_keys,
       default=False, note="in a temp dir rather than under /home"),
    _e("SetSetuidOrSetgidBit", "Setuid or Setgid Bit Set on File", "Set Setuid or Setgid bit",
       FI, set_setuid_or_setgid_bit, default=False, needs=["chmod"]),
    _e("DetectCryptoMinersUsingTheStratumProtocol", "Crypto Mining Pool Arguments",
       "Detect crypto miners using the Stratum protocol", FS,
       detect_crypto_miners_using_stratum, default=False, needs=["echo"],
       note="a full stratum+tcp:// URL in the arguments"),
    _e("PotentialLocalPrivilegeEscalationViaEnvironmentVariablesMisuse",
       "Glibc Tunables Exploit Pattern",
       "Potential Local Privilege Escalation via Environment Variables Misuse", FI,
       glibc_tunables_misuse, default=False, needs=["sh", "id"],
       note="a nested-assignment GLIBC_TUNABLES value, the CVE-2023-4911 shape"),
    _e("LaunchPackageManagementProcessInContainer", "Package Manager Run in Container",
       "Launch Package Management Process in Container", FI,
       launch_package_management_process_in_container, place=CONTAINER, default=False,
       needs=["apt-get"]),
    _e("LaunchSuspiciousNetworkToolInContainer", "Network Scanner Executed",
       "Launch Suspicious Network Tool in Container", FI, launch_suspicious_network_tool,
       place=CONTAINER, default=False, note="stand-in named nmap, aimed at 127.0.0.1"),
    _e("NonSudoSetuid", "Setuid to Root Outside Privilege Tools", "Non sudo setuid", FI,
       non_sudo_setuid, default=False,
       note="a child with loginuid 1000 and uid daemon switches back to root (saved uid)"),
)

BY_NAME = {a.name: a for a in ACTIONS}
FALCO_STUDY = ("syscall.ChangeThreadNamespace", "syscall.ReadSensitiveFileUntrusted",
               "syscall.WriteBelowBinaryDir")


def select(pattern: str | None = None, *, all_actions: bool = False) -> list[Action]:
    """Actions whose name matches ``pattern`` (a regex, searched); default: the defaults."""
    if pattern:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise SyswardError(f"bad action regex {pattern!r}: {exc}; fix the pattern.") from None
        chosen = [a for a in ACTIONS if rx.search(a.name)]
        if not chosen:
            raise SyswardError(f"no action matches {pattern!r}; see 'sysward bench generate "
                               "--list'.")
        return chosen
    return [a for a in ACTIONS if all_actions or a.default]


def resolve(names: Iterable[str]) -> list[Action]:
    """Actions by exact name, with or without the ``syscall.`` prefix."""
    out = []
    for n in names:
        a = BY_NAME.get(n) or BY_NAME.get(f"syscall.{n}")
        if a is None:
            raise SyswardError(f"unknown action {n!r}; see 'sysward bench generate --list'.")
        out.append(a)
    return out


def run_action(action: Action, ctx: ActionContext) -> tuple[list[int], str | None]:
    """Run once: (pids to attribute alerts to, error text or None)."""
    assert action.run is not None
    try:
        return action.run(ctx), None
    except ActionSkipped as exc:
        return [], str(exc)
    except OSError as exc:
        return [], f"{type(exc).__name__}: {os.strerror(exc.errno) if exc.errno else exc}"


# Actions that start a long-lived background process: at most one per worker per round, so
# a fast round does not pile up thousands of sleeping processes.
ONCE_PER_ROUND = frozenset({"syscall.ReadSensitiveFileTrustedAfterStartup"})
