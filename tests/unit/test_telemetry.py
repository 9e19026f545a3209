"""Telemetry: real HTTP GETs on loopback, exposition parsed with prometheus_client.parser."""

from __future__ import annotations

import io
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sysward.agent.exposition import render
from sysward.agent.output_totals import OutputTotals
from sysward.agent.sensors import TypeCounters
from sysward.agent.stage_queue import StageQueue
from sysward.agent.stats import enforce_samples, kernel_samples, output_samples
from sysward.agent.telemetry import (
    Sample,
    Telemetry,
    parse_listen,
    queue_samples,
    samples_from_stats,
)
from sysward.enrich import Enricher
from sysward.errors import SyswardError
from sysward.events.model import Event
from sysward.metrics import ENFORCE_COUNTERS, METRICS
from sysward.outputs import Dispatcher, StdoutOutput


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Stage:
    """A stage as the pipeline has them: plain int counters bumped on the hot path."""

    def __init__(self) -> None:
        self.lost: dict[str, int] = {"execve": 0, "openat": 0}
        self.depth = 0

    def samples(self) -> list[Sample]:
        out = [Sample("sysward_kernel_lost_total", {"type": t}, n, "counter",
                      "Events lost in the ring buffer.") for t, n in self.lost.items()]
        out.append(Sample("sysward_queue_depth", {"queue": "rules"}, self.depth, "gauge",
                          "Events waiting."))
        return out


def _families(text: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    out: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(fam.name, {})[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_and_health_over_http() -> None:
    tel = Telemetry()
    stage = Stage()
    tel.add_source(stage.samples)
    enr = Enricher(seed_from_proc=False)
    tel.add_source(enr.samples)
    healthy: dict[str, Any] = {"ok": True, "why": ""}
    server = tel.serve("127.0.0.1:0", health=lambda: (healthy["ok"], healthy["why"]))
    try:
        assert server.port > 0 and server.url.startswith("http://127.0.0.1:")
        stage.lost["execve"] = 7
        stage.depth = 3
        for i in range(5):
            enr.process(Event(ts=i, type="openat", pid=100 + i))
        code, body = _get(server.url + "/metrics")
        assert code == 200
        fams = _families(body)
        lost = fams["sysward_kernel_lost"]
        assert lost[("sysward_kernel_lost_total", (("type", "execve"),))] == 7
        assert lost[("sysward_kernel_lost_total", (("type", "openat"),))] == 0
        assert fams["sysward_queue_depth"][("sysward_queue_depth", (("queue", "rules"),))] == 3
        assert fams["sysward_enrich_events"][("sysward_enrich_events_total", ())] == 5
        assert fams["sysward_enrich_processes"][("sysward_enrich_processes", ())] == 5
        # the process's own RSS and CPU (sysward.agent.procself)
        assert fams["process_resident_memory_bytes"][
            ("process_resident_memory_bytes", ())] > 1_000_000
        assert "process_cpu_seconds" in fams
        # counters move between scrapes without re-registering anything
        stage.lost["execve"] = 9
        fams = _families(_get(server.url + "/metrics")[1])
        lost = fams["sysward_kernel_lost"]
        assert lost[("sysward_kernel_lost_total", (("type", "execve"),))] == 9
        assert fams["sysward_telemetry_scrapes"][("sysward_telemetry_scrapes_total", ())] >= 1

        assert _get(server.url + "/healthz") == (200, "ok\n")
        healthy.update(ok=False, why="reader stalled for 5 s")
        assert _get(server.url + "/healthz") == (503, "reader stalled for 5 s\n")
        assert _get(server.url + "/nope")[0] == 404
    finally:
        t0 = time.monotonic()
        server.close()
        closed_in = time.monotonic() - t0
    assert closed_in < 0.1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_health_check_that_raises_is_unhealthy() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    with Telemetry(process_metrics=False).serve("127.0.0.1:0", health=broken) as server:
        code, body = _get(server.url + "/healthz")
    assert code == 503 and "boom" in body


def test_port_in_use_is_one_sentence_error() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        with pytest.raises(SyswardError) as info:
            Telemetry().serve(f"127.0.0.1:{port}")
        msg = str(info.value)
        assert "already in use" in msg and f"127.0.0.1:{port}" in msg and "\n" not in msg
    finally:
        busy.close()


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = Telemetry(process_metrics=False).serve("[::1]:0")
    except SyswardError as exc:
        pytest.skip(f"::1 not available: {exc}")
    with server:
        assert _get(server.url + "/healthz") == (200, "ok\n")


@pytest.mark.parametrize("bad", ["8765", "localhost:", ":80", "h:99999", "h:x"])
def test_bad_listen(bad: str) -> None:
    with pytest.raises(SyswardError):
        parse_listen(bad)


def test_snapshot_and_broken_source() -> None:
    tel = Telemetry(process_metrics=False)
    stage = Stage()
    stage.lost.update(execve=2, openat=3)
    tel.add_source(stage.samples)
    tel.add_source(lambda: samples_from_stats({"sysward_rules_alerts_total": 4,
                                               "sysward_rules_loaded": 40}))

    def broken() -> list[Sample]:
        raise RuntimeError("stage gone")

    tel.add_source(broken)
    snap = tel.snapshot()
    assert snap['sysward_kernel_lost_total{type="execve"}'] == 2
    assert snap["sysward_kernel_lost_total"] == 5  # sum over labels
    assert snap["sysward_rules_alerts_total"] == 4 and snap["sysward_rules_loaded"] == 40
    assert snap["sysward_telemetry_source_errors_total"] == 1
    # the exposition still works with a broken source, and says so
    fams = _families(tel.exposition().decode())
    assert fams["sysward_rules_loaded"][("sysward_rules_loaded", ())] == 40
    assert fams["sysward_telemetry_source_errors"][
        ("sysward_telemetry_source_errors_total", ())] == 2


def test_queue_samples_from_a_real_stage_queue() -> None:
    q: StageQueue[int] = StageQueue("rules", 3)
    q.put_batch([1, 2])
    q.put_batch([3, 4])  # does not fit: dropped and counted
    tel = Telemetry(process_metrics=False)
    tel.add_source(lambda: queue_samples(q))
    snap = tel.snapshot()
    assert snap['sysward_queue_depth{queue="rules"}'] == 2
    assert snap['sysward_queue_dropped_total{queue="rules"}'] == 2
    assert snap['sysward_queue_enqueued_total{queue="rules"}'] == 2


def test_docs_list_every_metric_we_expose() -> None:
    """Every metric /metrics can serve is in the registry (the telemetry serves no other, the
    process's own figures included), so the registry is what docs/metrics.md must cover."""
    doc = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    missing = sorted(n for n in METRICS if f"`{n}`" not in doc)
    assert not missing, f"docs/metrics.md lacks {missing}"
    text = Telemetry().exposition().decode()
    served = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= served
    assert not served - set(METRICS), f"/metrics serves unregistered {served - set(METRICS)}"


def test_exposition_is_what_prometheus_client_writes() -> None:
    """The text format written by sysward.agent.exposition is, for these families, byte for
    byte what prometheus-client writes (escapes, counter names, values; for values of seven
    or more integer digits the two spell the same number differently, 1234567.0 against
    1.234567e+06, both read by Prometheus' parser)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

    samples = [
        Sample("sysward_rules_alerts_total", {"rule": 'odd "name" \\ with\nnewline',
                                              "priority": "Warning"}, 3, "counter",
               "alerts per rule\nand \\ priority"),
        Sample("sysward_rules_alerts_total", {"rule": "b", "priority": "Error"}, 1e17,
               "counter", "alerts per rule\nand \\ priority"),
        Sample("sysward_queue_depth", {"queue": "raw"}, 0.25, "gauge", "Events waiting."),
        Sample("sysward_rules_loaded", {}, float("inf"), "gauge", "rules"),
        Sample("sysward_rules_eval_seconds_total", {}, 12.5, "counter", "seconds"),
    ]

    class Families(Collector):
        def collect(self) -> Any:
            fams: dict[str, Metric] = {}
            for x in samples:
                name = x.name.removesuffix("_total") if x.kind == "counter" else x.name
                fam = fams.setdefault(name, Metric(name, x.help, x.kind))
                fam.add_sample(x.name, x.labels, x.value)
            yield from fams.values()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())
    assert render(samples) == generate_latest(registry)
    # and parsed back, every value and label survives
    fams = _families(render(samples).decode())
    assert fams["sysward_rules_alerts"][("sysward_rules_alerts_total", (
        ("priority", "Warning"), ("rule", 'odd "name" \\ with\nnewline')))] == 3


def test_a_kind_clash_is_left_out_and_counted() -> None:
    clashes: list[Sample] = []
    text = render([Sample("sysward_rules_loaded", {}, 1, "gauge", "x"),
                   Sample("sysward_rules_loaded", {"a": "b"}, 2, "counter", "x")],
                  clashes.append).decode()
    assert len(clashes) == 1 and text.count("sysward_rules_loaded") == 3  # HELP, TYPE, one


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(request)
        out = b""
        while chunk := c.recv(65536):
            out += chunk
    return out


def test_http_edges_head_methods_bad_requests_and_a_stalled_client() -> None:
    with Telemetry(process_metrics=False).serve("127.0.0.1:0") as server:
        head = _raw(server.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
        assert b"Content-Length: 3\r\n" in head
        assert _raw(server.port, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(
            b"HTTP/1.1 405 ")
        assert _raw(server.port, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert _raw(server.port, b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n").startswith(
            b"HTTP/1.1 400 ")
        query = _raw(server.port, b"GET /healthz?verbose=1 HTTP/1.0\r\n\r\n")
        assert query.endswith(b"\r\n\r\nok\n")
        # a client that connects and sends nothing holds one thread, not the server
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            t0 = time.monotonic()
            assert _get(server.url + "/healthz") == (200, "ok\n")
            assert time.monotonic() - t0 < 2


def test_every_stage_reports_registered_metrics_only() -> None:
    """The sources the agent registers, fed by real stages: nothing is refused as unknown."""
    dispatcher = Dispatcher([StdoutOutput(fmt="json", stream=io.BytesIO())])
    tel = Telemetry(process_metrics=False)
    tel.add_source(Enricher(seed_from_proc=False).samples)
    tel.add_source(lambda: queue_samples(StageQueue("raw", 4)))
    tel.add_source(lambda: kernel_samples({"execve": TypeCounters(3, 1, 2, 0)}))
    tel.add_source(lambda: output_samples(OutputTotals.of(dispatcher)))
    tel.add_source(lambda: enforce_samples({name: 1 for name in ENFORCE_COUNTERS}))
    names = {s.name for s in tel.samples()}
    assert tel.source_errors == 0
    assert {"sysward_kernel_seen_total", "sysward_queue_depth", "sysward_enrich_events_total",
            "sysward_enforce_killed_total"} <= names
    # an unregistered name is refused and counted, never served
    tel.add_source(lambda: [Sample("sysward_made_up_total", {}, 1.0, "counter", "x")])
    assert "sysward_made_up_total" not in {s.name for s in tel.samples()}
    assert tel.source_errors == 1


def test_enforcement_counters_are_the_kernel_enum() -> None:
    """The registry's enforcement names are the kernel's enum enf_counter (bpf/abi.h, mirrored
    in sysward.enforce.abi) plus the agent's own pending_dropped."""
    from sysward.enforce.abi import ENF_C_MAX, Counter

    kernel = tuple(c.name.lower() for c in Counter if c < ENF_C_MAX)
    assert (*kernel, "pending_dropped") == ENFORCE_COUNTERS


class _FakeQueue:
    name = "x"
    capacity = 1
    enqueued_total = 0
    dropped_total = 0
    high_water = 0
    depth = 0
