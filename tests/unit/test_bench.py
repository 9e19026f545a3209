"""The bench's pieces that need no kernel: the action table against the event generator's
list and sysward's rules, alert attribution, alert feeds, metrics parsing, reports."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner

from sysward.bench import actions as act
from sysward.bench.agent import parse_metrics
from sysward.bench.detections import AlertFeed, Matcher, SeenAlert, _iso_ns
from sysward.bench.procstats import ProcWatch, cpu_percent, sample
from sysward.bench.report import Report, Table, markdown

ROOT = Path(__file__).resolve().parents[2]
TSV = ROOT / ".." / "shared" / "event-generator" / "ACTIONS.tsv"
RULES_D = ROOT / "src" / "sysward" / "rules.d"


def _tsv() -> list[dict[str, str]]:
    if not TSV.exists():
        pytest.skip(f"{TSV} is not there (the shared material is read, never copied)")
    with open(TSV, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _sysward_rule_names() -> set[str]:
    names = set()
    for path in sorted(RULES_D.glob("*.yaml")):
        for item in yaml.safe_load(path.read_text()) or []:
            if isinstance(item, dict) and "rule" in item:
                names.add(item["rule"])
    return names


def test_every_default_action_of_the_event_generator_is_covered() -> None:
    rows = _tsv()
    defaults = {r["action"] for r in rows if r["action_runs_by_default"].startswith("yes")}
    assert len(defaults) >= 23
    ours = {a.name for a in act.ACTIONS if a.default}
    assert defaults == ours
    runnable = [a for a in act.ACTIONS if a.default and a.run is not None]
    assert len(runnable) >= 20
    for a in act.ACTIONS:
        assert a.run is not None or a.skip, f"{a.name} is skipped without a reason"


def test_falco_rule_names_match_the_event_generator() -> None:
    by_action = {r["action"]: r for r in _tsv()}
    for a in act.ACTIONS:
        row = by_action[a.name]
        assert a.falco_rule == row["falco_rule"], a.name
        assert a.falco_file == row["rule_file"], a.name


def test_sysward_rules_named_by_actions_exist() -> None:
    names = _sysward_rule_names()
    for a in act.ACTIONS:
        if a.sysward_rule is not None:
            assert a.sysward_rule in names, f"{a.name}: no rule {a.sysward_rule!r}"


def test_falco_study_actions_all_have_rules() -> None:
    for a in act.resolve(act.FALCO_STUDY):
        assert a.sysward_rule is not None and a.run is not None


def test_select_and_resolve() -> None:
    assert [a.name for a in act.select("ReadSensitiveFileUntrusted$")] == [
        "syscall.ReadSensitiveFileUntrusted"]
    assert len(act.select(None)) == sum(a.default for a in act.ACTIONS)
    assert len(act.select(None, all_actions=True)) == len(act.ACTIONS)
    from sysward.errors import SyswardError

    with pytest.raises(SyswardError):
        act.select("(")
    with pytest.raises(SyswardError):
        act.resolve(["NoSuchAction"])
    assert act.resolve(["WriteBelowEtc"])[0].name == "syscall.WriteBelowEtc"


def test_matcher_counts_by_pid_or_marker_and_shares_rules() -> None:
    shadow = "Shadow File Opened by Unexpected Program"
    chosen = act.resolve(["ReadSensitiveFileUntrusted", "DirectoryTraversalMonitoredFileRead",
                          "WriteBelowBinaryDir"])
    m = Matcher(chosen, "mk123", since_ns=1000)
    m.add_pids({"syscall.ReadSensitiveFileUntrusted": [10],
                "syscall.DirectoryTraversalMonitoredFileRead": [10],
                "syscall.WriteBelowBinaryDir": [10]})
    m.feed([
        SeenAlert(shadow, 10, "x", 2000),
        SeenAlert(shadow, 10, "x", 2000),
        SeenAlert(shadow, 99, "other process", 2000),  # not ours
        SeenAlert(shadow, 99, "cmdline=foo mk123", 2000),  # ours by marker
        SeenAlert(shadow, 10, "x", 500),  # before the round
        SeenAlert("Write Below Binary Directory", 10, "", 2000),
        SeenAlert("Some Other Rule", 10, "", 2000),
    ])
    assert m.per_rule[shadow] == 3
    att = m.attribute(Counter({"syscall.ReadSensitiveFileUntrusted": 2,
                               "syscall.DirectoryTraversalMonitoredFileRead": 2,
                               "syscall.WriteBelowBinaryDir": 2}))
    assert att.total_expected == 6
    assert att.total_detected == 4
    assert att.lost == 2
    assert shadow in att.shared
    assert att.detected["syscall.WriteBelowBinaryDir"] == 1


def test_jsonl_feed_reads_only_whole_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(orjson.dumps({"rule": "old", "output_fields": {"proc.pid": 1}}) + b"\n")
    feed = AlertFeed(path)
    assert feed.new() == []
    line = orjson.dumps({"rule": "R", "output": "o", "output_fields": {"proc.pid": 42},
                         "time": "2026-01-02T03:04:05.123456789Z"})
    with open(path, "ab") as f:
        f.write(line + b"\n" + line[:10])
    got = feed.new()
    assert [(a.rule, a.pid) for a in got] == [("R", 42)]
    assert got[0].time_ns % 1_000_000_000 == 123456789
    with open(path, "ab") as f:
        f.write(line[10:] + b"\n")
    assert [a.pid for a in feed.new()] == [42]


def test_iso_time() -> None:
    assert _iso_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert _iso_ns("garbage") == 0
    assert _iso_ns(None) == 0


def test_parse_metrics_sums_types_and_queues() -> None:
    text = "\n".join([
        "# TYPE sysward_kernel_seen_total counter",
        'sysward_kernel_seen_total{type="openat"} 10.0',
        'sysward_kernel_seen_total{type="setuid"} 5.0',
        "# TYPE sysward_kernel_lost_total counter",
        'sysward_kernel_lost_total{type="setuid"} 2.0',
        "# TYPE sysward_queue_dropped_total counter",
        'sysward_queue_dropped_total{queue="raw"} 3.0',
        "# TYPE sysward_queue_depth gauge",
        'sysward_queue_depth{queue="raw"} 7.0',
        "# TYPE sysward_rules_events_total counter",
        "sysward_rules_events_total 13.0",
        "# TYPE process_resident_memory_bytes gauge",
        "process_resident_memory_bytes 1048576.0",
        "",
    ])
    c = parse_metrics(text)
    assert (c.seen, c.lost, c.queue_dropped, c.queue_depth, c.events) == (15, 2, 3, 7, 13)
    assert c.per_type_seen == {"openat": 10, "setuid": 5}
    assert c.drops == 5
    assert c.rss_bytes == 2**20


def test_procstats_of_this_process() -> None:
    a = sample(os.getpid())
    sum(i * i for i in range(200_000))  # burn a little CPU
    b = sample(os.getpid())
    assert a.rss_bytes > 1_000_000
    assert cpu_percent(a, b) >= 0
    w = ProcWatch(os.getpid())
    cpu, rss = w.tick()
    assert rss > 0 and w.peak_rss >= rss
    with pytest.raises(ProcessLookupError):
        sample(2**22 + 12345)


def test_report_writes_json_markdown_and_png(tmp_path: Path) -> None:
    r = Report("unit", tmp_path / "out")
    t = Table("numbers", ["name", "value"])
    t.add("a|b", 1234.5)
    t.add("c", None)
    r.table(t, show=False)
    r.say("summary line")
    r.plot("p.png", "t", "x", "y", {"s": ([1, 2, 3], [3, 1, 2])})
    out = r.write()
    data = orjson.loads((out / "result.json").read_bytes())
    assert data["tables"][0]["rows"][0] == ["a|b", 1234.5]
    assert data["summary"] == ["summary line"]
    md = (out / "report.md").read_text()
    assert "| a\\|b | 1,234 |" in md and "| c | - |" in md and "![p](p.png)" in md
    assert (out / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert "### numbers" in markdown(t)


def test_generate_list_cli() -> None:
    from sysward.cli import cli

    res = CliRunner().invoke(cli, ["bench", "generate", "--list", "--all"])
    assert res.exit_code == 0, res.output
    assert "ChangeThreadNamespace" in res.output
    assert "Namespace Changed Inside Container" in res.output
    assert "skipped:" in res.output  # DebugfsLaunchedInPrivilegedContainer


def test_flood_helper_counts_its_calls() -> None:
    import shutil
    import subprocess

    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    from sysward.bench.cbuild import build

    out = subprocess.run([str(build("flood")), "open", "1000", "0", "/dev/null"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == 1000 and int(out[1]) > 0
    ns = float(subprocess.run([str(build("nscall")), "getpid", "1000"], capture_output=True,
                              text=True, check=True).stdout)
    assert 0 < ns < 1e6
