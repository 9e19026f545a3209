from __future__ import annotations

import threading
import time

from sysward.agent.stage_queue import StageQueue


def test_full_queue_drops_whole_batches_and_counts_them() -> None:
    q: StageQueue[int] = StageQueue("t", capacity=5)
    assert q.put_batch([1, 2, 3]) == 0
    assert q.put_batch([4, 5, 6]) == 3  # would exceed 5
    assert q.put_batch([4, 5]) == 0
    assert (q.depth, q.dropped_total, q.enqueued_total, q.high_water) == (5, 3, 5, 5)
    assert q.get_batch(0) == [1, 2, 3]
    assert q.get_batch(0) == [4, 5]
    assert q.get_batch(0) is None
    assert q.depth == 0


def test_consumer_wakes_on_put_and_on_close() -> None:
    q: StageQueue[str] = StageQueue("t", capacity=10)
    got: list[object] = []

    def consume() -> None:
        got.append(q.get_batch(5))
        got.append(q.get_batch(5))

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.05)
    q.put_batch(["a"])
    time.sleep(0.05)
    start = time.monotonic()
    q.close()
    t.join(2)
    assert got == [["a"], None]
    assert time.monotonic() - start < 1
    assert q.put_batch(["late"]) == 1


def test_discard_empties_and_reports_the_count() -> None:
    q: StageQueue[int] = StageQueue("t", capacity=10)
    q.put_batch([1, 2])
    q.put_batch([3])
    assert q.discard() == 3
    assert q.depth == 0 and q.get_batch(0) is None
