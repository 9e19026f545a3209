"""The webhook output against real HTTP receivers on 127.0.0.1 (port 0)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sysward.alert import Alert, Priority
from sysward.outputs import HttpOutput

FALCO_KEYS = {"hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time"}


def make_alert(i: int = 0, rule: str = "Read sensitive file", prio: Priority = Priority.WARNING
               ) -> Alert:
    return Alert(
        time=1_700_000_000_000_000_000 + i,
        rule=rule,
        priority=prio,
        output=f"sensitive file opened (file=/etc/shadow n={i})",
        output_fields={"fd.name": "/etc/shadow", "n": i},
        tags=["T1003", "filesystem"],
        hostname="box",
    )


class Receiver:
    """An HTTP/1.1 server recording POSTs; ``respond(n)`` picks the status of the n-th one."""

    def __init__(self, respond: Callable[[int], int] = lambda n: 200, delay_s: float = 0.0):
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.connections: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    n = len(outer.times)
                    outer.times.append(time.monotonic())
                    outer.connections.add(self.client_address)
                if delay_s:
                    outer.release.wait(delay_s)
                status = respond(n)
                if status == 200:
                    with outer.lock:
                        outer.bodies.append(json.loads(body))
                        outer.paths.append(self.path)
                        outer.headers.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        r = Receiver(**kwargs)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_posts_falco_shaped_json_one_per_request(receiver_factory: Callable[..., Receiver]
                                                 ) -> None:
    rx = receiver_factory()
    out = HttpOutput(rx.url, flush_interval_s=0.01, headers={"X-Token": "s3cret"})
    for i in range(20):
        out.emit(make_alert(i))
    assert out.flush(5.0)
    out.close(1.0)
    assert len(rx.bodies) == 20
    for i, body in enumerate(rx.bodies):
        assert set(body) == FALCO_KEYS
        assert body["rule"] == "Read sensitive file"
        assert body["priority"] == "Warning"
        assert body["output_fields"]["n"] == i
        assert body["time"].startswith("2023-11-14T22:13:20.0000000")
    assert rx.paths == ["/"] * 20
    assert rx.headers[0]["X-Token"] == "s3cret"
    assert rx.headers[0]["Content-Type"] == "application/json"
    # keep-alive: one TCP connection carried all requests
    assert len(rx.connections) == 1
    assert out.stats() == {"sent": 20, "failed": 0, "dropped": 0, "queued": 0, "retries": 0}


def test_retries_with_exponential_backoff(receiver_factory: Callable[..., Receiver]) -> None:
    rx = receiver_factory(respond=lambda n: 500 if n < 3 else 200)
    out = HttpOutput(rx.url, flush_interval_s=0.0, backoff_s=0.1, max_retries=5)
    out.emit(make_alert(7))
    assert wait_for(lambda: len(rx.bodies) == 1, 5.0)
    out.close(1.0)
    assert len(rx.times) == 4  # three 500s, then the delivery
    gaps = [b - a for a, b in zip(rx.times, rx.times[1:], strict=False)]
    # back-off doubles: 0.1, 0.2, 0.4 s (with some scheduling slack on top)
    for gap, expected in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert expected * 0.9 <= gap < expected + 0.5, gaps
    assert gaps[0] < gaps[1] < gaps[2]
    stats = out.stats()
    assert stats["sent"] == 1 and stats["retries"] == 3 and stats["failed"] == 0


def test_gives_up_after_max_retries_and_4xx_is_final(
    receiver_factory: Callable[..., Receiver]
) -> None:
    rx = receiver_factory(respond=lambda n: 503)
    out = HttpOutput(rx.url, flush_interval_s=0.0, backoff_s=0.01, max_retries=2)
    out.emit(make_alert())
    assert wait_for(lambda: out.stats()["failed"] == 1)
    assert len(rx.times) == 3
    out.close(0.5)
    rx2 = receiver_factory(respond=lambda n: 400)
    out2 = HttpOutput(rx2.url, flush_interval_s=0.0, backoff_s=0.01, max_retries=5)
    out2.emit(make_alert())
    assert wait_for(lambda: out2.stats()["failed"] == 1)
    out2.close(0.5)
    assert len(rx2.times) == 1  # a client error is not retried


def test_unreachable_receiver_counts_failures(receiver_factory: Callable[..., Receiver]) -> None:
    rx = receiver_factory()
    url = rx.url
    rx.stop()  # nothing listens on that port any more
    out = HttpOutput(url, flush_interval_s=0.0, backoff_s=0.01, max_retries=1, timeout_s=0.5)
    out.emit(make_alert())
    assert wait_for(lambda: out.stats()["failed"] == 1)
    out.close(0.5)


def test_emit_never_blocks_while_receiver_sleeps(receiver_factory: Callable[..., Receiver]
                                                 ) -> None:
    rx = receiver_factory(delay_s=5.0)
    out = HttpOutput(rx.url, flush_interval_s=0.0, queue_size=100, timeout_s=10.0)
    out.emit(make_alert(0))
    assert wait_for(lambda: len(rx.times) == 1)  # the worker is now stuck in a request
    start = time.perf_counter()
    for i in range(1, 1001):
        out.emit(make_alert(i))
    elapsed = time.perf_counter() - start
    assert elapsed < 0.2, f"1000 emits took {elapsed:.3f}s while the receiver slept"
    stats = out.stats()
    # queue of 100: the rest were dropped and counted, none lost silently
    assert stats["dropped"] == 1000 - 100
    assert stats["queued"] == 101
    close_start = time.monotonic()
    out.close(0.3)
    assert time.monotonic() - close_start < 0.6
    stats = out.stats()
    assert stats["sent"] + stats["failed"] + stats["dropped"] + stats["queued"] == 1001


def test_bad_url_is_a_user_error() -> None:
    from sysward.errors import SyswardError

    with pytest.raises(SyswardError, match="bad webhook URL"):
        HttpOutput("ftp://example")
