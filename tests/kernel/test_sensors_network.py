"""Network events from real children on 127.0.0.1 and ::1: connect, accept, dup2 of a socket."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator

import pytest
from sensor_helpers import Collector, in_child, start


@pytest.fixture(scope="module")
def col() -> Iterator[Collector]:
    yield from start("connect,accept,bind,listen,socket,dup")


def _listener(family: int, host: str) -> socket.socket:
    srv = socket.socket(family, socket.SOCK_STREAM)
    try:
        srv.bind((host, 0))
    except OSError as exc:
        srv.close()
        pytest.skip(f"cannot bind {host}: {exc}")
    srv.listen(8)
    return srv


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"),
                                         (socket.AF_INET6, "::1")])
def test_connect_reports_remote_and_local(col: Collector, family: int, host: str) -> None:
    srv = _listener(family, host)
    port = srv.getsockname()[1]
    rfd, wfd = os.pipe()

    def child() -> None:
        c = socket.socket(family, socket.SOCK_STREAM)
        c.connect((host, port))
        os.write(wfd, str(c.getsockname()[1]).encode())

    pid = in_child(child)
    os.close(wfd)
    sport = int(os.read(rfd, 16))
    os.close(rfd)
    srv.close()
    ev = col.of_pid(pid, "connect")
    assert ev.res == 0
    assert (ev.args["family"], ev.args["addr"], ev.args["port"]) == (family, host, port)
    assert (ev.args["saddr"], ev.args["sport"]) == (host, sport)
    assert ev.args["sotype"] == socket.SOCK_STREAM and ev.args["proto"] == socket.IPPROTO_TCP


def test_refused_connect_has_negative_result(col: Collector) -> None:
    srv = _listener(socket.AF_INET, "127.0.0.1")
    port = srv.getsockname()[1]
    srv.close()  # nothing listens there any more

    def child() -> None:
        c = socket.socket()
        assert c.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED

    pid = in_child(child)
    ev = col.of_pid(pid, "connect")
    assert ev.res == -errno.ECONNREFUSED and ev.args["port"] == port


def test_accept_and_listen_in_child(col: Collector) -> None:
    rfd, wfd = os.pipe()

    def child() -> None:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(3)
        os.write(wfd, str(srv.getsockname()[1]).encode())
        conn, _ = srv.accept()
        conn.close()

    pid = os.fork()
    if pid == 0:
        try:
            child()
        finally:
            os._exit(0)
    os.close(wfd)
    port = int(os.read(rfd, 16))
    os.close(rfd)
    c = socket.create_connection(("127.0.0.1", port))
    cport = c.getsockname()[1]
    os.waitpid(pid, 0)
    c.close()
    ev = col.of_pid(pid, "listen")
    assert (ev.args["addr"], ev.args["port"], ev.args["backlog"]) == ("127.0.0.1", port, 3)
    ev = col.find(lambda e: e.pid == pid and e.type in ("accept", "accept4"))
    assert ev.res >= 3
    assert (ev.args["addr"], ev.args["port"]) == ("127.0.0.1", cport)
    assert (ev.args["saddr"], ev.args["sport"]) == ("127.0.0.1", port)
    ev = col.of_pid(pid, "bind")
    assert ev.args["addr"] == "127.0.0.1" and ev.args["port"] == 0


def test_dup2_of_socket_onto_stdout(col: Collector) -> None:
    """The reverse-shell pattern: a connected socket becomes fd 1."""
    srv = _listener(socket.AF_INET, "127.0.0.1")
    port = srv.getsockname()[1]

    def child() -> None:
        c = socket.create_connection(("127.0.0.1", port))
        os.dup2(c.fileno(), 1)

    pid = in_child(child)
    srv.close()
    ev = col.find(lambda e: e.pid == pid and e.type in ("dup2", "dup3") and e.res == 1)
    assert ev.args["newfd"] == 1 and ev.args["fd_type"] == "4"
    assert (ev.args["addr"], ev.args["port"]) == ("127.0.0.1", port)
    assert ev.args["family"] == socket.AF_INET
