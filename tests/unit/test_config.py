"""Configuration: defaults < YAML file < overrides, and one-sentence errors with file:line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from sysward.alert import Priority
from sysward.config import (
    Config,
    all_keys,
    apply_output_specs,
    config_to_dict,
    load_config,
    parse_set,
)
from sysward.errors import ConfigError

DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_defaults_match_the_spec() -> None:
    cfg = load_config(str(Path("/dev/null")), {})
    assert cfg == Config()
    assert cfg.min_priority == Priority.DEBUG and cfg.rules_defaults is True
    assert cfg.outputs.stdout.enabled and cfg.outputs.stdout.format == "text"
    assert cfg.outputs.sqlite.enabled and cfg.outputs.sqlite.path == "/var/lib/sysward/alerts.db"
    assert (cfg.outputs.sqlite.retention_hours, cfg.outputs.sqlite.max_size_mb) == (168, 512)
    assert not cfg.outputs.file.enabled and cfg.outputs.file.backups == 5
    assert cfg.outputs.http.max_retries == 5 and cfg.outputs.http.queue_size == 10000
    assert (cfg.rate_limit.rate, cfg.rate_limit.burst) == (100.0, 1000)
    assert cfg.kernel.ringbuf_mb == 4 and cfg.kernel.wakeup_fraction == 0.5
    assert cfg.pipeline.queue_size == 20000 and cfg.process_table.max_processes == 65536
    assert cfg.server.listen == "127.0.0.1:8765" and cfg.enforce.mode == "off"
    assert cfg.enforce.never_kill == ["/usr/sbin/sshd", "/usr/lib/systemd/systemd"]


def test_file_then_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, """
        min_priority: Warning
        rules: [/etc/a.yaml, /etc/rules.d]
        outputs:
          http: {enabled: true, url: "http://127.0.0.1:2801/", headers: {X-Key: abc}}
          file:
            enabled: yes
            max_size_mb: 1
        rate_limit: {rate: 5, burst: 10}
        enforce:
          mode: off
        filters:
          ignore_comms: [cron]
    """)
    cfg = load_config(path, {"rate_limit.burst": "20", "outputs.http.timeout_s": 2,
                             "hostname": "007", "min_priority": Priority.ERROR})
    assert cfg.min_priority == Priority.ERROR  # flag beats file
    assert cfg.rules == ["/etc/a.yaml", "/etc/rules.d"]
    assert cfg.outputs.http.enabled and cfg.outputs.http.headers == {"X-Key": "abc"}
    assert cfg.outputs.file.enabled and cfg.outputs.file.max_size_mb == 1.0
    assert cfg.outputs.file.path == "/var/log/sysward/alerts.jsonl"  # untouched default
    assert (cfg.rate_limit.rate, cfg.rate_limit.burst) == (5.0, 20)
    assert cfg.outputs.http.timeout_s == 2.0
    assert cfg.hostname == "007"  # a string key keeps the text of --set
    assert cfg.enforce.mode == "off"  # not YAML 1.1's false
    assert cfg.origin("rate_limit.rate") == f"{path}:9"
    assert cfg.origin("rate_limit.burst") == "--set rate_limit.burst"
    assert cfg.origin("kernel.ringbuf_mb") == "defaults"


def test_set_parses_yaml_values_and_whole_sections() -> None:
    cfg = load_config("/dev/null", {
        "outputs.sqlite.enabled": "false",
        "filters.ignore_comms": "[a, b]",
        "outputs.syslog": "{enabled: true, address: '127.0.0.1:514'}",
        "rules": "/etc/one.yaml",
    })
    assert cfg.outputs.sqlite.enabled is False
    assert cfg.filters.ignore_comms == ["a", "b"]
    assert cfg.outputs.syslog.enabled and cfg.outputs.syslog.address == "127.0.0.1:514"
    assert cfg.rules == ["/etc/one.yaml"]
    assert parse_set("a.b=c=d") == ("a.b", "c=d")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set("novalue")


def test_absent_default_file_is_fine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sysward.config as config_mod

    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_PATH", str(tmp_path / "nope.yaml"))
    assert load_config(None, {}) == Config()
    with pytest.raises(ConfigError, match=r"config file .*nope.yaml does not exist"):
        load_config(str(tmp_path / "nope.yaml"), {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("outputs:\n  htp: {}\n", r":2: unknown key 'outputs.htp' \(did you mean 'http'\?\)$"),
        ("min_priorty: warning\n", r":1: unknown key 'min_priorty' \(did you mean 'min_priority'"),
        ("rate_limit:\n  rate: fast\n", r":2: 'rate_limit.rate' must be a number, not a string$"),
        ("rate_limit:\n  burst: 1.5\n", r":2: 'rate_limit.burst' must be an integer, not a number"),
        ("outputs:\n  stdout:\n    enabled: 3\n", r":3: 'outputs.stdout.enabled' must be true or"),
        ("min_priority: loud\n", r":1: 'min_priority': unknown priority 'loud'"),
        ("rules: {a: 1}\n", r":1: 'rules' must be a list, not a mapping"),
        ("outputs: [1]\n", r":1: 'outputs' must be a mapping of keys, not a list"),
        ("- a\n- b\n", r":1: 'the configuration' must be a mapping of keys, not a list"),
        ("a: [1,\n", r":2: invalid YAML: "),
        ("x: 1\n\tbad: 2\n", r":2: invalid YAML: "),
        ("\n\nenforce:\n  mode: kill\n", r":4: 'enforce.mode' must be off, audit or on"),
        ("outputs:\n  stdout: {format: xml}\n", r":2: 'outputs.stdout.format' must be text"),
        ("outputs:\n  http: {enabled: true}\n", r":2: 'outputs.http.url' must be an http://"),
        ("kernel: {ringbuf_mb: 3}\n", r":1: 'kernel.ringbuf_mb' must be a power of two"),
        ("server: {listen: localhost}\n", r":1: 'server.listen' must be HOST:PORT"),
        ("outputs:\n  syslog: {facility: x}\n", r":2: 'outputs.syslog.facility' must be one"),
        ("filters: {ignore_comms: [averyveryverylongcomm]}\n", r":1: 'filters.ignore_comms\[0\]"),
    ],
)
def test_file_errors_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    msg = str(info.value)
    assert msg.startswith(path + ":")
    import re

    assert re.search(message, msg), msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("outputs.htp.url", "x", r"^--set outputs.htp.url: unknown key 'outputs.htp' \(did you"),
        ("rate_limit.rate", "-1", r"^--set rate_limit.rate: 'rate_limit.rate' must be 0"),
        ("kernel.ringbuf_mb", "big", r"^--set kernel.ringbuf_mb: 'kernel.ringbuf_mb' must be an"),
        ("stats_interval_s.x", "1", r"'stats_interval_s' has no keys below it"),
    ],
)
def test_override_errors(key: str, value: str, message: str) -> None:
    import re

    with pytest.raises(ConfigError) as info:
        load_config("/dev/null", {key: value})
    assert re.search(message, str(info.value)), str(info.value)


def test_output_specs(tmp_path: Path) -> None:
    cfg = apply_output_specs(load_config("/dev/null", {}), [
        "json", "file:/tmp/a.jsonl", "syslog:127.0.0.1:5514", "http:http://127.0.0.1:2801/"])
    o = cfg.outputs
    assert o.stdout.enabled and o.stdout.format == "json"
    assert o.file.enabled and o.file.path == "/tmp/a.jsonl"
    assert o.syslog.enabled and o.syslog.address == "127.0.0.1:5514"
    assert o.http.enabled and o.http.url == "http://127.0.0.1:2801/"
    assert o.sqlite.enabled  # the store stays on
    cfg = apply_output_specs(load_config("/dev/null", {}), ["syslog", "sqlite:off"])
    assert not cfg.outputs.stdout.enabled and cfg.outputs.syslog.address == "/dev/log"
    assert not cfg.outputs.sqlite.enabled
    cfg = apply_output_specs(load_config("/dev/null", {}), ["https://hook.example/x"])
    assert cfg.outputs.http.url == "https://hook.example/x"
    for bad, msg in [("carrier-pigeon", "unknown output"), ("file:", "unknown output"),
                     ("http:ftp://x", "must be an http"), ("syslog:host:99999", "HOST:PORT")]:
        with pytest.raises(ConfigError, match=msg):
            apply_output_specs(load_config("/dev/null", {}), [bad])
    with pytest.raises(ConfigError, match="only one stdout output"):
        apply_output_specs(load_config("/dev/null", {}), ["stdout", "json"])


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = load_config("/dev/null", {"min_priority": "notice", "outputs.http.url": "http://a/"})
    dumped = yaml.safe_dump(config_to_dict(cfg))
    again = load_config(write(tmp_path, dumped), {})
    assert again == cfg


def test_every_key_is_documented() -> None:
    text = DOCS.read_text()
    missing = [key for key in all_keys() if f"`{key}`" not in text]
    assert not missing, f"undocumented keys in docs/configuration.md: {missing}"


def test_cli_prints_config_errors_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "outputs:\n  htp: {}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sysward", "alerts", "--config", path],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"sysward: error: {path}:2: unknown key 'outputs.htp' (did you mean 'http'?)"
    )


def test_documented_default_file_loads_to_the_defaults(tmp_path: Path) -> None:
    text = DOCS.read_text()
    block = text.split("## A complete file with the defaults", 1)[1]
    yaml_text = block.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert load_config(write(tmp_path, yaml_text), {}) == Config()


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8765", ("127.0.0.1", 8765)),
    ("[::1]:9000", ("::1", 9000)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),  # port 0: the kernel picks a free one
])
def test_one_listen_parser_for_config_and_server(text: str, expected: tuple[str, int]) -> None:
    from sysward.agent.telemetry import parse_listen
    from sysward.config import parse_host_port

    assert parse_host_port(text) == parse_listen(text) == expected
    load_config(None, {"server.listen": text})  # the config accepts what the server takes


@pytest.mark.parametrize("bad", ["8765", "localhost:", ":80", "h:65536", "h:x", "h:-1"])
def test_listen_addresses_refused_alike(bad: str) -> None:
    from sysward.agent.telemetry import parse_listen
    from sysward.errors import SyswardError

    with pytest.raises(ConfigError, match="'server.listen' must be HOST:PORT"):
        load_config(None, {"server.listen": bad})
    with pytest.raises(SyswardError):
        parse_listen(bad)


def test_one_comm_and_ring_size_check() -> None:
    from sysward.events.types import COMM_LEN, comm_ok
    from sysward.kernel.maps import ring_size_ok

    assert comm_ok("x" * (COMM_LEN - 1)) and not comm_ok("x" * COMM_LEN) and not comm_ok("")
    assert ring_size_ok(1 << 20) and not ring_size_ok(3 << 20) and not ring_size_ok(0)
    load_config(None, {"filters.ignore_comms": f"[{'x' * (COMM_LEN - 1)}]"})
    with pytest.raises(ConfigError, match="1 to 15 bytes"):
        load_config(None, {"filters.ignore_comms": f"[{'x' * COMM_LEN}]"})


def test_grouping_keys_and_their_errors(tmp_path: Path) -> None:
    cfg = Config()
    assert (cfg.grouping.enabled, cfg.grouping.window_s, cfg.grouping.max_groups) == \
        (True, 60.0, 4096)
    cfg = load_config(write(tmp_path, "grouping: {enabled: false, window_s: 5}\n"), {})
    assert cfg.grouping.enabled is False and cfg.grouping.window_s == 5.0
    with pytest.raises(ConfigError, match="grouping.window_s"):
        load_config(write(tmp_path, "grouping: {window_s: 0}\n"), {})
    with pytest.raises(ConfigError, match="grouping.max_groups"):
        load_config(write(tmp_path, "grouping: {max_groups: 0}\n"), {})
