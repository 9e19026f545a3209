"""Each event-generator action the bench runs triggers its sysward rule: one real
``sysward run`` subprocess with the default rules, every action once (on the host or in the
bench container), and the alert of each must arrive in the agent's sqlite store."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sysward.bench import actions as act
from sysward.bench.agent import Agent
from sysward.bench.detections import AlertFeed, Matcher
from sysward.bench.generate import Workers, settle

# Every action with a sysward rule that can run here: the event generator's defaults and the
# extras (the Falco study's set among them).
CHECKED = [a for a in act.ACTIONS if a.sysward_rule is not None and a.missing() is None]

@pytest.fixture(scope="module")
def detections(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("bench-actions")
    marker = f"swtest{secrets.token_hex(3)}"
    with Agent.start(workdir / "agent") as agent:
        feed = AlertFeed(agent.store)
        workers = Workers(CHECKED, marker)
        try:
            time.sleep(0.3)
            matcher = Matcher(CHECKED, marker, since_ns=time.time_ns())
            ans = workers.round(0.0, 60.0, 1, 0.2)
        finally:
            workers.close()
        matcher.add_pids(ans["pids"])
        settle(matcher, feed, len(CHECKED), timeout=10.0)
        att = matcher.attribute(Counter(ans["counts"]))
        feed.close()
        yield {"answer": ans, "attribution": att, "log": agent.log_path}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("action", CHECKED, ids=lambda a: a.short)
def test_action_raises_its_alert(action: act.Action, detections: dict[str, Any]) -> None:
    ans, att = detections["answer"], detections["attribution"]
    assert ans["counts"].get(action.name) == 1, (
        f"{action.short} did not run: {ans['errors'].get(action.name)}")
    assert att.detected[action.name] >= 1, (
        f"{action.short}: no '{action.sysward_rule}' alert arrived; agent log "
        f"{Path(detections['log'])}")
