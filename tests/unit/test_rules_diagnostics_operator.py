"""Rule-file diagnostics a new user meets: YAML errors, typos in keys, a rule defined twice."""

from __future__ import annotations

import pytest

from sysward.config import ConfigError, load_config
from sysward.rules import load_rules_text

RULE = """\
- rule: A
  desc: d
  condition: evt.type = open
  output: o
  priority: INFO
"""


def test_yaml_error_points_where_the_problem_starts() -> None:
    text = RULE.replace("output: o", 'output: "never closed') + "\n\n"
    res = load_rules_text(text, "yamlerr.yaml")
    (err,) = res.errors
    assert (err.line, err.col) == (4, 11)  # the opening quote, not past the end of the file
    assert err.line <= len(text.splitlines())
    # PyYAML's own words and both of its positions stay in the message
    assert "while scanning a quoted scalar (line 4, column 11)" in err.message
    assert "found unexpected end of stream (line 8, column 1)" in err.message
    assert str(err).startswith("yamlerr.yaml:4:11: error LOAD_ERR_YAML_PARSE: invalid YAML: ")


def test_yaml_error_without_a_context_keeps_the_problem_position() -> None:
    res = load_rules_text("- rule: A\n  desc: [x\n", "e.yaml")
    (err,) = res.errors
    assert err.line == 2 and "line 2" in err.message


def test_config_yaml_error_points_at_the_start(tmp_path: object) -> None:
    from pathlib import Path

    cfg = Path(str(tmp_path)) / "c.yaml"
    cfg.write_text("hostname: 'abc\nkernel:\n  ringbuf_mb: 4\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:1: invalid YAML: while scanning a quoted "
                                          r"scalar \(line 1, column 11\), found unexpected end"):
        load_config(str(cfg))


def test_unknown_rule_key_is_a_warning_with_a_suggestion() -> None:
    res = load_rules_text(RULE + "  tagz: [x]\n", "r.yaml")
    assert res.ok and res.rules_loaded == 1
    (w,) = res.warnings
    assert w.code == "LOAD_UNKNOWN_KEY" and (w.line, w.col) == (6, 3)
    assert "unknown key 'tagz' in rule 'A'; did you mean 'tags'?" in w.message
    assert str(w).count("tagz") == 1  # said once


def test_unknown_keys_of_macros_and_lists() -> None:
    res = load_rules_text("- macro: m\n  condition: evt.type = open\n  desc: x\n"
                          "- list: l\n  items: [a]\n  itemz: [b]\n", "m.yaml")
    assert sorted((w.code, w.line) for w in res.warnings) == [
        ("LOAD_UNKNOWN_KEY", 3), ("LOAD_UNKNOWN_KEY", 6)]


def test_sysward_rule_keys_are_known() -> None:
    res = load_rules_text(RULE + "  action: kill\n  enforce_mode: audit\n", "r.yaml")
    assert not [w for w in res.warnings if w.code == "LOAD_UNKNOWN_KEY"]


def test_second_rule_with_the_same_name_is_warned_about() -> None:
    res = load_rules_text(RULE + RULE.replace("evt.type = open", "evt.type = openat"), "d.yaml")
    (w,) = res.warnings
    assert w.code == "LOAD_DUPLICATE_RULE" and w.line == 6
    assert "first at d.yaml:1" in w.message and "override" in w.message
    assert res.rules_loaded == 1  # the later definition replaces the first, as in Falco
    assert res.ruleset.event_types == frozenset({"openat"})


def test_amending_a_rule_is_not_a_duplicate() -> None:
    res = load_rules_text(RULE + "- rule: A\n  condition: and proc.name = cat\n"
                                 "  override:\n    condition: append\n"
                                 "- rule: A\n  enabled: false\n", "a.yaml")
    assert res.ok and not res.warnings
