"""A bench worker: runs event-generator actions on request, on the host or in the bench
container (``python -m sysward.bench.worker MARKER``).

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.

request  ``{"actions": [names], "sleep": s, "duration": s, "iterations": n|null,
"delay": s}``: run the actions in turn, round-robin, paced so that action i starts at
``t0 + i * sleep`` (pacing instead of sleeping per action: a 5 us sleep really lasts ~60 us,
so sleeping would cap the rate long before the agent is the limit), until ``duration`` has
passed or every action ran ``iterations`` times.
answer   ``{"counts": {name: ok runs}, "errors": {name: {text: n}}, "pids": {name: [pids]},
"elapsed": s, "worker_pid": pid, "container": bool}``
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson

from sysward.bench.actions import ONCE_PER_ROUND, ActionContext, resolve, run_action


def run_round(ctx: ActionContext, req: dict[str, Any]) -> dict[str, Any]:
    actions = resolve(req["actions"])
    sleep = float(req.get("sleep", 0.0))
    duration = float(req.get("duration", 1.0))
    iterations = req.get("iterations")
    ctx.delay_s = float(req.get("delay", ctx.delay_s))
    counts: Counter[str] = Counter()
    tries: Counter[str] = Counter()
    errors: dict[str, Counter[str]] = defaultdict(Counter)
    pids: dict[str, set[int]] = defaultdict(set)
    t0 = time.monotonic()
    end = t0 + duration
    i = 0
    done_once: set[str] = set()
    while True:
        progressed = False
        for a in actions:
            if iterations is not None and tries[a.name] >= iterations:
                continue
            if a.name in ONCE_PER_ROUND and a.name in done_once:
                continue
            now = time.monotonic()
            if now >= end:
                break
            due = t0 + i * sleep
            if due > now:
                time.sleep(due - now)
            got, err = run_action(a, ctx)
            tries[a.name] += 1
            i += 1
            progressed = True
            if a.name in ONCE_PER_ROUND:
                done_once.add(a.name)
            if err is None:
                counts[a.name] += 1
                pids[a.name].update(got)
            else:
                errors[a.name][err] += 1
        if not progressed or time.monotonic() >= end:
            break
    elapsed = time.monotonic() - t0
    ctx.reap()
    return {
        "counts": dict(counts),
        "errors": {k: dict(v) for k, v in errors.items() if v},
        "pids": {k: sorted(v) for k, v in pids.items()},
        "elapsed": elapsed,
        "worker_pid": os.getpid(),
    }


def main(argv: list[str]) -> int:
    marker = argv[1] if len(argv) > 1 else "sysward-bench"
    with tempfile.TemporaryDirectory(prefix=f"{marker}-") as tmp:
        ctx = ActionContext(Path(tmp), marker)
        out = sys.stdout.buffer
        out.write(orjson.dumps({"ready": True, "worker_pid": os.getpid()}) + b"\n")
        out.flush()
        for line in sys.stdin.buffer:
            if not line.strip():
                continue
            answer = run_round(ctx, orjson.loads(line))
            out.write(orjson.dumps(answer) + b"\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
