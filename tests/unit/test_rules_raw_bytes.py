"""Bytes that are not UTF-8: kept by the decoder, matched by ``\\xHH``, printable in alerts."""

from __future__ import annotations

import orjson

from sysward.events.decoder import dentry_path, join_path, string_list
from sysward.events.model import Event, Process
from sysward.events.text import printable
from sysward.rules import load_rules_text
from sysward.rules.ruleset import alert_for

RULE = """
- rule: Raw byte in a path
  desc: d
  condition: evt.type = openat and fd.name contains "\\xff"
  output: "opened %fd.name by %proc.name"
  priority: warning
"""


def _open(path: str) -> Event:
    proc = Process(pid=5, comm="x", argv=["x"])
    return Event(ts=1, type="openat", pid=5, res=3, args={"name": path, "flags": 0}, proc=proc)


def test_decoder_keeps_invalid_bytes() -> None:
    assert string_list(b"a\xffb\0c\0") == ["a\udcffb", "c"]
    assert dentry_path(b"n\xfe\0dir\0") == "/dir/n\udcfe"
    assert join_path(b"/tmp/\xff\0", b"") == "/tmp/\udcff"
    # valid UTF-8 is still text
    assert string_list("é\0".encode()) == ["é"]


def test_a_hex_escape_matches_the_raw_byte_and_the_alert_is_valid_utf8() -> None:
    res = load_rules_text(RULE, "raw.yaml")
    assert res.ok, [str(d) for d in res.errors]
    rule = res.ruleset.rules[0]
    raw = _open(join_path(b"/tmp/a\xffb\0", b""))
    assert rule.matches(raw)
    # U+FFFD (what the decoder used to produce) is not the byte 0xff
    assert not rule.matches(_open("/tmp/a\ufffdb"))
    alert = alert_for(rule, raw, "h")
    assert "/tmp/a\ufffdb" in alert.output
    assert orjson.loads(alert.to_json())["output_fields"]["fd.name"] == "/tmp/a\ufffdb"


def test_captured_events_with_raw_bytes_still_encode() -> None:
    ev = _open("/tmp/\udcff")
    assert Event.from_json(ev.to_json()).args["name"] == "/tmp/\ufffd"
    assert printable("plain") == "plain"
