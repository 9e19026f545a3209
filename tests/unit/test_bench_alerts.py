"""``sysward bench alerts`` delivers every alert through each output it measures."""

from __future__ import annotations

from sysward.bench.alerts_bench import OUTPUTS, run_alerts_bench
from sysward.rules.packaged import PACKAGED_RULES_DIR


def test_every_alert_reaches_every_output() -> None:
    report = run_alerts_bench([str(PACKAGED_RULES_DIR)], 300, OUTPUTS)
    assert report["distinct_alerts"] > 50
    assert [f["output"] for f in report["outputs"]] == list(OUTPUTS)
    for fig in report["outputs"]:
        assert fig["written"] == 300 and fig["dropped"] == 0 and fig["failed"] == 0, fig
        assert fig["us_per_alert"] > 0
    assert report["render_us_per_alert"] > 0
