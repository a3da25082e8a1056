"""What `c360 up` / `c360 dagster` print of the live pipeline, from the heartbeat: a long first
build told from a stuck pipeline, then a line a minute, and a process that died."""

from __future__ import annotations

import os

from customer360.pipeline.heartbeat import Beat
from customer360.pipeline.progress import PipelineProgress

DEAD_PID = 2**22 + 1  # above Linux's pid_max: never a live process


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def beat(clock: Clock, **fields) -> Beat:
    values = {"pid": os.getpid(), "run_id": "abcdef0123456789", "at": clock.now}
    return Beat(**(values | fields))


def test_from_the_first_build_to_a_line_a_minute():
    clock = Clock()
    current: list[Beat | None] = [None]
    progress = PipelineProgress(lambda: current[0], clock=clock, report_every_s=60)
    assert progress.lines() == []  # no micro-batch process yet

    current[0] = beat(clock, started_at=1000.0)
    assert progress.lines() == [
        f"pipeline: micro-batch process {os.getpid()} started (Dagster run abcdef01); its "
        "first batch lands and builds all that is new, the whole history on a first start"
    ]
    assert progress.lines() == []

    clock.now = 1061.0
    current[0] = beat(clock, started_at=1000.0)
    assert progress.lines() == ["pipeline: the first micro-batch has run for 61 s"]
    clock.now = 1090.0
    current[0] = beat(clock, started_at=1000.0)
    assert progress.lines() == []  # said a minute ago

    clock.now = 1200.5
    current[0] = beat(clock, started_at=1000.0, batches=1, records=1_234_567, last_batch_at=1200.0)
    assert progress.lines() == [
        "pipeline: the first micro-batch ended after 200.0 s, 1,234,567 records landed; the "
        "dashboard shows them. From now on a line every 60 s; every batch is in the Dagster UI"
    ]
    clock.now = 1230.0
    current[0] = beat(clock, started_at=1000.0, batches=20, records=1_240_000, last_batch_at=1229.0)
    assert progress.lines() == []

    clock.now = 1260.5
    current[0] = beat(clock, started_at=1000.0, batches=41, records=1_250_000, last_batch_at=1259.0)
    assert progress.lines() == [
        "pipeline: 40 micro-batches in the last 60 s, 15,433 records landed; the latest ended "
        "1.5 s ago"
    ]
    clock.now = 1321.0
    current[0] = beat(clock, started_at=1000.0, batches=41, records=1_250_000, last_batch_at=1259.0)
    assert progress.lines() == ["pipeline: no micro-batch finished in the last 60 s"]


def test_a_process_that_died_is_said_once_then_its_successor():
    clock = Clock()
    current = [beat(clock, started_at=1000.0, batches=3, last_batch_at=999.0)]
    progress = PipelineProgress(lambda: current[0], clock=clock)
    assert progress.lines()[0].startswith("pipeline: micro-batch process")

    current[0] = beat(clock, pid=DEAD_PID, started_at=1000.0, batches=3)
    assert progress.lines() == [
        f"pipeline: the micro-batch process is not running (its process {DEAD_PID} is gone); "
        "the sensor starts another (the Dagster UI says why it ended)"
    ]
    assert progress.lines() == []

    current[0] = beat(clock, run_id="9876543210fedcba", started_at=1005.0)
    assert progress.lines()[0].startswith(
        f"pipeline: micro-batch process {os.getpid()} started (Dagster run 98765432)"
    )


def test_the_heartbeat_of_an_earlier_start_is_not_taken_for_this_ones():
    clock = Clock()
    stale = beat(clock, pid=DEAD_PID, at=clock.now - 3600, batches=500)
    progress = PipelineProgress(lambda: stale, clock=clock)
    assert progress.lines() == []
    assert progress.lines() == []
