"""Landing ahead of the builds (pipeline/extract_ahead.py), with a scripted extractor."""

from __future__ import annotations

import threading

from customer360.pipeline.extract_ahead import ExtractAhead
from extractors import SOURCES, BatchResult


def landed(source: str, batch_id: int, records: int, before: str, after: str, lag: int):
    return BatchResult(
        source=source,
        batch_id=batch_id,
        records=records,
        quarantined=1,
        bytes=10 * records,
        position_before=before,
        position_after=after,
        remaining_lag=lag,
        seconds=0.01,
    )


def idle(source: str, position: str, lag: int = 0):
    return BatchResult.nothing_landed(source, position, remaining_lag=lag, seconds=0.01)


class ScriptedExtractor:
    """Each extract_all() plays the next round: {source: result or exception}; sources not
    named land nothing; after the script, every round is idle. A round runs once the test
    releases it (`play`); `entered(n)` waits until round n began, so the rounds before it are
    fully booked."""

    def __init__(self, rounds):
        self.rounds = list(rounds)
        self.gate = threading.Semaphore(0)
        self.calls = 0
        self.called = threading.Condition()

    def entered(self, n: int) -> bool:
        with self.called:
            return self.called.wait_for(lambda: self.calls >= n, timeout=5)

    def extract_all(self, sources, max_records, max_seconds):
        with self.called:
            self.calls += 1
            self.called.notify_all()
        self.gate.acquire()
        script = self.rounds.pop(0) if self.rounds else {}
        results, errors = {}, {}
        for source in sources:
            outcome = script.get(source, idle(source, "p"))
            if isinstance(outcome, Exception):
                errors[source] = outcome
            else:
                results[source] = outcome
        return results, errors


def play(extractor: ScriptedExtractor, rounds: int) -> None:
    for _ in range(rounds):
        extractor.gate.release()


def test_rounds_between_two_takes_are_merged_per_source_and_idle_sources_give_their_lag():
    extractor = ScriptedExtractor(
        [
            {"weblogs": landed("weblogs", 7, 100, "0:0", "0:100", lag=50)},
            {"weblogs": landed("weblogs", 9, 50, "0:100", "0:150", lag=5)},
            {"weblogs": idle("weblogs", "0:150", lag=0), "users": idle("users", "t1", lag=3)},
        ]
    )
    ahead = ExtractAhead(extractor, max_records=1000, max_seconds=1.0)
    ahead.start()
    try:
        play(extractor, 3)
        assert extractor.entered(4)  # rounds 1-3 done and booked
        assert ahead.wait(0)
        results, errors = ahead.take()
    finally:
        play(extractor, 100)
        ahead.stop()
    assert errors == {}
    assert set(results) == set(SOURCES)
    weblogs = results["weblogs"]
    assert (weblogs.batch_id, weblogs.records, weblogs.quarantined) == (9, 150, 2)
    assert (weblogs.position_before, weblogs.position_after) == ("0:0", "0:150")
    assert weblogs.remaining_lag == 0  # as of the last round, not the last landing
    assert not results["users"].landed_anything and results["users"].remaining_lag == 3


def test_a_take_hands_over_once_and_errors_are_reported_with_their_source():
    extractor = ScriptedExtractor(
        [
            {"users": landed("users", 3, 2, "a", "b", lag=0), "weblogs": RuntimeError("down")},
        ]
    )
    ahead = ExtractAhead(extractor, max_records=1000, max_seconds=1.0)
    ahead.start()
    try:
        play(extractor, 1)
        assert extractor.entered(2)
        first, errors = ahead.take()
        second, errors_again = ahead.take()
    finally:
        play(extractor, 100)
        ahead.stop()
    assert first["users"].records == 2
    assert errors == {"weblogs": "RuntimeError: down"}
    assert second["users"].records == 0 and not second["users"].landed_anything
    assert errors_again == {}


def test_stop_ends_the_thread_and_a_take_after_it_does_not_wait():
    extractor = ScriptedExtractor([])
    ahead = ExtractAhead(extractor, max_records=1000, max_seconds=1.0)
    ahead.start()
    play(extractor, 100)
    ahead.stop()
    assert ahead.take()[1] == {}
