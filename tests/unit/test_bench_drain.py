"""The bench's drain ends only on a batch that succeeded with nothing left, never on a failure."""

from __future__ import annotations

import pytest

from customer360.bench import post_load
from customer360.pipeline.microbatch import MicroBatchResult
from extractors import BatchResult


def quiet_extract(source: str) -> BatchResult:
    return BatchResult.nothing_landed(source, None, remaining_lag=0, seconds=0.0)


class ScriptedBatch:
    """A micro-batch whose runs return the given results, one after another."""

    def __init__(self, results: list[MicroBatchResult]):
        self.results = results
        self.runs = 0

    def run(self, data_tests=None) -> MicroBatchResult:
        self.runs += 1
        return self.results.pop(0)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(post_load.time, "sleep", lambda seconds: None)


def test_a_failed_extract_with_the_other_sources_caught_up_does_not_end_the_drain():
    failed = MicroBatchResult(
        extracts={"weblogs": quiet_extract("weblogs")},
        extract_errors={"users": "ServerSelectionTimeoutError: MongoDB is down"},
    )
    caught_up = MicroBatchResult(extracts={"weblogs": quiet_extract("weblogs")})
    batch = ScriptedBatch([failed, caught_up])

    post_load.drain(batch)

    assert batch.runs == 2


def test_the_drain_ends_on_the_first_successful_batch_with_nothing_left():
    batch = ScriptedBatch([MicroBatchResult(extracts={"weblogs": quiet_extract("weblogs")})])

    assert post_load.drain(batch) == []
    assert batch.runs == 1
