"""The encodings an alert makes once when it is sealed are byte for byte the plain ones."""

from __future__ import annotations

import ipaddress

import orjson

from sysward.alert import Alert, Priority
from sysward.bench.alerts_bench import matching_pairs
from sysward.rules.packaged import PACKAGED_RULES_DIR
from sysward.rules.ruleset import alert_for


def _plain_json(alert: Alert) -> bytes:
    return orjson.dumps(alert.to_falco_dict(), default=str)


def test_sealed_alerts_of_the_bench_stream_encode_as_before() -> None:
    pairs = matching_pairs([str(PACKAGED_RULES_DIR)])
    rules = set()
    for rule, event in pairs:
        alert = alert_for(rule, event, "host-a")
        plain, fields = _plain_json(alert), orjson.dumps(alert.output_fields, default=str)
        alert.seal()
        assert alert.to_json() == plain
        assert alert.fields_json() == fields
        assert orjson.loads(plain)["output_fields"] == orjson.loads(fields)
        rules.add(rule.name)
    assert len(rules) >= 8  # the rules the synthetic stream fires


def test_seal_with_odd_values_enforcement_and_store_only() -> None:
    alert = Alert(time=1_700_000_000_123_456_789, rule='R "quoted" \\', priority=Priority.ALERT,
                  output="out \u00e9 \ufffd", hostname="h\n",
                  output_fields={"ip": ipaddress.ip_address("10.0.0.1"), "n": 2**63,
                                 "none": None, "list": [1, "a"], "group.id": 3},
                  tags=["a", "b"], action_taken="killed")
    plain = _plain_json(alert)
    unsealed = alert.to_json()
    alert.output_fields["late"] = 1  # before the seal, every call encodes what is there now
    assert alert.to_json() != unsealed and b'"late":1' in alert.to_json()
    del alert.output_fields["late"]
    alert.seal()
    fields = alert.fields_json()
    assert fields == orjson.dumps(alert.output_fields, default=str)
    assert alert.to_json() == plain
    assert alert.fields_json() is fields and alert.to_json() is alert.to_json()  # kept once made
    assert b'"action_taken":"killed"' in plain and b'"ip":"10.0.0.1"' in plain


def test_text_line_and_labels() -> None:
    alert = Alert(time=1_700_000_000_000_000_042, rule="R", priority=Priority.INFORMATIONAL,
                  output="x")
    assert alert.text_line().endswith(".000000042: Informational x")
    assert [p.label for p in Priority][:2] == ["Emergency", "Alert"]
    assert orjson.loads(alert.to_json())["time"] == "2023-11-14T22:13:20.000000042Z"
