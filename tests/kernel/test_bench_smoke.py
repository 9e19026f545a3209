"""Smoke tests of the bench commands with tiny parameters: each runs against a real agent
and writes its report.  The figures are not asserted (benches report, they do not judge);
the counts that must hold whatever the machine are."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from sysward.cli import cli


def _bench(args: list[str]) -> None:
    res = CliRunner().invoke(cli, ["bench", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output


def _result(out: Path) -> dict:  # type: ignore[type-arg]
    assert (out / "report.md").exists()
    return orjson.loads((out / "result.json").read_bytes())  # type: ignore[no-any-return]


@pytest.mark.timeout(120)
def test_generate_loop_two_rounds(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    _bench(["generate", "--loop", "--sleep", "0.01", "--round-duration", "0.5",
            "--max-rounds", "2", "--out", str(out),
            "ChangeThreadNamespace|ReadSensitiveFileUntrusted$|WriteBelowBinaryDir"])
    data = _result(out)
    assert len(data["rounds"]) == 2
    first = data["rounds"][0]
    assert first["expected"] > 10
    assert first["detected"] == first["expected"]  # 100 actions/s cannot lose anything
    assert (out / "eps_vs_lost.png").exists() and (out / "rss_over_time.png").exists()


@pytest.mark.timeout(60)
def test_run_one_action(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["bench", "run", "--out", str(out),
                                   "ReadSensitiveFileUntrusted"])
    r = _result(out)["rounds"][0]
    assert r["per_action"]["syscall.ReadSensitiveFileUntrusted"]["runs"] == 1
    if res.exit_code != 0:
        # a busy host can make the agent drop the event: then the drop must be counted
        assert "no alert arrived" in str(res.exception)
        assert r["queue_dropped"] + r["kernel_lost"] > 0, res.output


@pytest.mark.timeout(120)
def test_flood_setuid(tmp_path: Path) -> None:
    out = tmp_path / "flood"
    _bench(["flood", "--events", "20000", "--workers", "1", "--syscall", "setuid",
            "--out", str(out)])
    r = _result(out)["results"][0]
    assert r["fired"] == 20000
    assert r["observed"] >= 20000  # every call enters the tracepoint (others may add more)


@pytest.mark.timeout(180)
def test_overhead_tiny(tmp_path: Path) -> None:
    out = tmp_path / "overhead"
    _bench(["overhead", "--scale", "0.02", "--repeat", "1", "--no-auditd", "--out", str(out)])
    res = _result(out)["results"]
    # the prefilter on (the default) and off side by side (issue 10)
    assert set(res) == {"no agent", "sysward (default rules)", "sysward (prefilter off)",
                        "sysward (kernel filter only)"}


@pytest.mark.timeout(120)
def test_sizing_one_quota(tmp_path: Path) -> None:
    out = tmp_path / "sizing"
    _bench(["sizing", "--cpus", "1", "--round-duration", "0.5", "--max-rounds", "1",
            "--sleep", "0.01", "--out", str(out)])
    rows = _result(out)["sizing"]
    assert rows[0]["cpus"] == 1.0 and rows[0]["max_eps"] is not None


@pytest.mark.timeout(60)
def test_latency_every_marker_alert_is_timed(tmp_path: Path) -> None:
    out = tmp_path / "lat"
    _bench(["latency", "--rate", "1000", "--markers", "20", "--duration", "2",
            "--out", str(out)])
    r = _result(out)["result"]
    assert r["markers"] >= 30
    assert r["alerts_seen"] == r["markers"]  # 1000 events/s cannot lose a marker
    assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]


@pytest.mark.timeout(180)
def test_churn_one_and_two_workers(tmp_path: Path) -> None:
    out = tmp_path / "churn"
    _bench(["churn", "--minutes", "0.1", "--workers", "1", "--workers", "2",
            "--interval", "0.5", "--out", str(out)])
    phases = _result(out)["phases"]
    assert [p["workers"] for p in phases] == [1, 2]
    for p in phases:
        assert p["execs"] > 100 and p["points"]
        # every exec of the workers was applied to the table, or its loss was counted
        assert p["agent_execs"] + p["kernel_lost"] + p["queue_dropped"] >= p["execs"]
        assert p["budget_mb"] == 32 and p["max_table_mb"] <= p["budget_mb"]
        assert p["evictions"]["expired"] > 0  # the exited workers' children left
    assert (out / "rss_over_time.png").exists() and (out / "table_over_time.png").exists()


@pytest.mark.timeout(120)
def test_soak_short(tmp_path: Path) -> None:
    out = tmp_path / "soak"
    _bench(["soak", "--minutes", "0.2", "--sample-s", "0.5", "--out", str(out)])
    data = _result(out)
    samples = data["samples"]
    assert len(samples) >= 15
    assert all(s["rss_mb"] > 5 for s in samples)
    assert [s["t_s"] for s in samples] == sorted(s["t_s"] for s in samples)
    assert data["rss_slope_mb_per_10min"] is not None
    # alerts flowed to every output: the agent's matches reached the webhook and syslog
    assert samples[-1]["matches"] > 20
    assert data["webhook_alerts"] > 20 and data["syslog_messages"] > 20
    assert data["drops"] == 0  # 10 alerts/s and a few thousand events/s lose nothing
    for plot in ("soak-rss.png", "soak-cpu.png", "soak-queue.png"):
        assert (out / plot).exists()
    assert "RSS slope" in (out / "report.md").read_text()
