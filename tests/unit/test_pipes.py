"""The pipe table: which exec'd process is on the other end of a stdin/stdout pipe, linked
from whichever side exec'd second, inherited at fork, bounded; and the stdio fields."""

from __future__ import annotations

from typing import Any

from sysward.enrich import Enricher
from sysward.enrich.pipes import PipeTable
from sysward.events.model import Event, Process
from sysward.rules.fields import resolve

PIPE = 4242


def _pipe(ino: int = PIPE) -> dict[str, Any]:
    return {"typechar": "p", "ino": ino}


TTY = {"typechar": "c", "ino": 3, "rdev": (136 << 8) | 1}


def _exec(pid: int, comm: str, argv: list[str], stdio: list[Any], ts: int) -> Event:
    return Event(ts, "execve", pid=pid, tid=pid, ppid=100, comm=comm, res=0,
                 args={"filename": f"/usr/bin/{comm}", "argv": argv, "cwd": "/",
                       "exe_flags": 0, "stdio": stdio})


def _run(events: list[Event]) -> Enricher:
    en = Enricher(seed_from_proc=False)
    en.process(Event(1, "clone", pid=100, tid=100, ppid=1, comm="bash", res=200, args={}))
    en.process(Event(2, "clone", pid=100, tid=100, ppid=1, comm="bash", res=201, args={}))
    for ev in events:
        en.process(ev)
    return en


def field(name: str, ev: Event) -> Any:
    return resolve(name).extract(ev)


def test_writer_first_the_reader_learns_its_writer() -> None:
    curl = _exec(200, "curl", ["curl", "-s", "http://x/i.sh"], [TTY, _pipe(), TTY], 10)
    sh = _exec(201, "sh", ["sh"], [_pipe(), TTY, TTY], 11)
    en = _run([curl, sh])
    assert field("proc.stdin.writer.name", sh) == "curl"
    assert field("proc.stdin.writer.cmdline", sh) == "curl -s http://x/i.sh"
    assert field("proc.stdin.writer.exepath", sh) == "/usr/bin/curl"
    assert field("proc.stdin.writer.pid", sh) == 200
    assert field("proc.stdout.reader.name", curl) is None  # curl's exec came first
    assert en.pipes.links == 1


def test_reader_first_the_writer_learns_its_reader() -> None:
    sh = _exec(201, "sh", ["sh"], [_pipe(), TTY, TTY], 10)
    curl = _exec(200, "curl", ["curl", "x"], [TTY, _pipe(), TTY], 11)
    _run([sh, curl])
    assert field("proc.stdout.reader.name", curl) == "sh"
    assert field("proc.stdin.writer.name", sh) is None


def test_other_pipes_and_forks_are_not_linked() -> None:
    # an unrelated pipe; and the fork of the shell (comm bash) never registers: only execs
    grep = _exec(200, "grep", ["grep", "x"], [_pipe(1), _pipe(2), TTY], 10)
    sh = _exec(201, "sh", ["sh"], [_pipe(), TTY, TTY], 11)
    _run([grep, sh])
    assert field("proc.stdin.writer.name", sh) is None
    assert field("proc.stdin.type", sh) == "pipe"
    assert field("proc.stdout.type", sh) == "file"
    assert field("proc.stdout.name", sh) == "/dev/pts/1"
    assert field("proc.stdin.name", sh) == f"pipe:[{PIPE}]"


def test_children_inherit_stdio_and_peers() -> None:
    curl = _exec(200, "curl", ["curl", "x"], [TTY, _pipe(), TTY], 10)
    sh = _exec(201, "sh", ["sh"], [_pipe(), TTY, TTY], 11)
    fork = Event(12, "clone", pid=201, tid=201, ppid=100, comm="sh", res=300, args={})
    conn = Event(13, "connect", pid=300, tid=300, ppid=201, comm="sh", res=0, args={})
    en = _run([curl, sh, fork, conn])
    child = en.lookup(300)
    assert child is not None and child.stdio is sh.proc.stdio  # type: ignore[union-attr]
    assert field("proc.stdin.type", conn) == "pipe"
    assert field("proc.stdin.writer.name", conn) == "curl"


def test_table_is_bounded_and_counted() -> None:
    t = PipeTable(max_pipes=4)
    for i in range(10):
        p = Process(pid=1000 + i, comm="w", stdio=[None, _pipe(i + 1), None])
        t.on_exec(p)
    assert len(t) == 4 and t.evictions == 6 and t.bytes > 0
    assert t.writer(10) is not None and t.writer(1) is None


def test_socket_names_and_types() -> None:
    sock = {"typechar": "4", "ino": 9, "family": 2, "addr": "10.0.0.9", "port": 4444,
            "saddr": "10.0.0.1", "sport": 51000}
    ev = _exec(200, "bash", ["bash", "-i"], [sock, sock, sock], 10)
    assert field("proc.stdin.type", ev) == "ipv4"
    assert field("proc.stdout.name", ev) == "10.0.0.1:51000->10.0.0.9:4444"
    srv = dict(sock, port=51000, sport=22)
    ev = _exec(200, "bash", ["bash"], [srv, None, None], 10)
    assert field("proc.stdin.name", ev) == "10.0.0.9:51000->10.0.0.1:22"
    assert field("proc.stderr.type", ev) is None


def test_exe_flags_fields() -> None:
    ev = _exec(200, "x", ["x"], [None, None, None], 10)
    ev.args["exe_flags"] = 8 | 16
    ev.args["exe_writer"] = "cp"
    assert field("proc.is_exe_writable", ev) is True
    assert field("proc.exe_written", ev) is True
    assert field("proc.exe_writer", ev) == "cp"
    ev.args["exe_flags"] = 0
    del ev.args["exe_writer"]
    assert field("proc.exe_written", ev) is False and field("proc.exe_writer", ev) is None
