"""When a micro-batch publishes the serving copy (customer360/pipeline/publishing.py), on a clock
the test moves, and when a batch has taken in everything there was."""

from __future__ import annotations

from customer360.pipeline.microbatch import MicroBatchResult, caught_up
from customer360.pipeline.publishing import PublishSchedule
from extractors.batch import BatchResult


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(schedule: PublishSchedule, clock: Clock, caught_up: bool, after_s: float) -> bool:
    """One batch of `after_s` seconds; whether it published."""
    clock.now += after_s
    due = schedule.due(caught_up)
    if due:
        schedule.published()
    return due


def test_every_batch_publishes_while_the_stream_keeps_up():
    clock = Clock()
    schedule = PublishSchedule(every_s=5, clock=clock)
    assert all(run(schedule, clock, caught_up=True, after_s=1) for _ in range(10))


def test_a_draining_backlog_publishes_every_period_from_its_first_full_batch_and_when_drained():
    clock = Clock()
    schedule = PublishSchedule(every_s=5, clock=clock)
    assert run(schedule, clock, caught_up=True, after_s=1)
    # Long idle, then a backlog: its first full batch does not publish, though the last copy
    # is older than the period.
    clock.now += 60
    published = [run(schedule, clock, caught_up=False, after_s=2) for _ in range(6)]
    # Full batches at +0, +2, +4, +6, +8, +10 s from the first: the one at +6 s is the first
    # 5 s or more after it; the period then restarts from that publication (+12 s next).
    assert published == [False, False, False, True, False, False]
    assert run(schedule, clock, caught_up=True, after_s=2)  # drained: published at once
    # A new backlog starts its own period.
    assert not run(schedule, clock, caught_up=False, after_s=1)
    assert run(schedule, clock, caught_up=True, after_s=1)


def test_full_batches_publish_a_period_after_the_later_of_the_first_full_batch_and_the_last_copy():
    clock = Clock()
    schedule = PublishSchedule(every_s=5, clock=clock)
    assert run(schedule, clock, caught_up=True, after_s=1)
    published = [run(schedule, clock, caught_up=False, after_s=3) for _ in range(4)]
    # Full batches at +3, +6, +9, +12 s after the copy: the period runs from +3 s.
    assert published == [False, False, True, False]


def landed(source: str, records: int, quarantined: int = 0, lag: int | None = 0) -> BatchResult:
    return BatchResult(source=source, batch_id=1, records=records, quarantined=quarantined,
                       bytes=1, position_before="0", position_after="1", remaining_lag=lag,
                       seconds=0.1)  # fmt: skip


def test_a_batch_is_full_when_a_source_read_max_records_quarantined_ones_included():
    def batch(*extracts: BatchResult) -> MicroBatchResult:
        return MicroBatchResult(extracts={e.source: e for e in extracts})

    assert caught_up(batch(landed("weblogs", 999), landed("users", 10)), max_records=1000)
    assert not caught_up(batch(landed("weblogs", 1000), landed("users", 10)), max_records=1000)
    # 997 landed and 3 quarantined: 1,000 read, more may be waiting.
    assert not caught_up(batch(landed("weblogs", 997, quarantined=3)), max_records=1000)
    assert caught_up(batch(), max_records=1000)  # nothing landed


def test_a_batch_whose_time_was_up_before_what_was_waiting_is_not_caught_up():
    """A slow machine reads a backlog ~100,000 records a source in a batch's time, never
    `max_records`: a source that landed some and still has a lag (Kafka), or cannot tell (a
    Mongo copy not finished: None), leaves more waiting."""

    def batch(*extracts: BatchResult) -> MicroBatchResult:
        return MicroBatchResult(extracts={e.source: e for e in extracts})

    assert not caught_up(batch(landed("weblogs", 90, lag=5_000_000)), max_records=1000)
    assert not caught_up(
        batch(landed("users", 5, lag=None), landed("weblogs", 3)), max_records=1000
    )
    assert caught_up(batch(landed("users", 5), landed("weblogs", 3)), max_records=1000)
    # Nothing landed in time (a broker restarting): no backlog taken in, nothing to defer for.
    assert caught_up(batch(landed("weblogs", 0, lag=40), landed("users", 5)), max_records=1000)
