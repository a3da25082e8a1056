"""The micro-batch loop of the bench's loop mode and the chaos soak (pipeline/loop.py)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from customer360.pipeline.loop import micro_batches


class ScriptedBatch:
    """Stands in for MicroBatch: each run() gives the next outcome (a records count or an error)."""

    def __init__(self, outcomes, stop: threading.Event):
        self.outcomes, self.stop = list(outcomes), stop

    def run(self):
        outcome = self.outcomes.pop(0)
        if not self.outcomes:
            self.stop.set()
        if isinstance(outcome, Exception):
            raise outcome
        return SimpleNamespace(records=outcome, dbt=None, success=True)


def test_every_batch_is_yielded_an_error_included_and_the_loop_goes_on() -> None:
    stop = threading.Event()
    begun: list[int] = []
    looped = list(
        micro_batches(
            ScriptedBatch([5, RuntimeError("Kafka down"), 0, 3], stop), stop, 0.0, begun.append
        )
    )
    assert begun == [1, 2, 3, 4]
    assert [b.number for b in looped] == [1, 2, 3, 4]
    assert [b.did_something for b in looped] == [True, False, False, True]
    assert looped[1].result is None and looped[1].error == "RuntimeError: Kafka down"
    assert all(b.ended_at >= b.started_at for b in looped)


def test_a_set_stop_runs_no_batch() -> None:
    stop = threading.Event()
    stop.set()
    assert list(micro_batches(ScriptedBatch([1], stop), stop, 0.0)) == []
