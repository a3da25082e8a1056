"""What `c360 up` / `c360 dagster` print of the live pipeline, from the heartbeat: a long first
build told from a stuck pipeline, when all that was landed is served, then a line a minute, and
a process that died."""

from __future__ import annotations

import os

from customer360.pipeline.heartbeat import Beat
from customer360.pipeline.progress import PipelineProgress

DEAD_PID = 2**22 + 1  # above Linux's greatest pid_max: never a live process


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Beats:
    """The heartbeat file as the progress reads it: what the process wrote last."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.current: Beat | None = None

    def write(self, **fields) -> None:
        values = {"pid": os.getpid(), "run_id": "abcdef0123456789", "at": self.clock.now}
        self.current = Beat(**(values | {"started_at": 1000.0} | fields))

    def __call__(self) -> Beat | None:
        return self.current


def test_a_history_that_takes_batches_to_drain_then_a_line_a_minute():
    clock = Clock()
    beats = Beats(clock)
    progress = PipelineProgress(beats, clock=clock, report_every_s=60)
    assert progress.lines() == []  # no micro-batch process yet

    beats.write()
    assert progress.lines() == [
        f"pipeline: micro-batch process {os.getpid()} started (Dagster run abcdef01); its "
        "first batches land and build all that is new, the whole history on a first start"
    ]
    assert progress.lines() == []

    clock.now = 1061.0
    beats.write()
    assert progress.lines() == ["pipeline: the first micro-batch has run for 61 s"]
    clock.now = 1090.0
    beats.write(batches=1, records=1_000_000, last_batch_at=1085.0)
    assert progress.lines() == []  # said a minute ago; the backlog's batch published nothing

    clock.now = 1125.0
    beats.write(batches=3, records=1_234_000, last_batch_at=1120.0)
    assert progress.lines() == [
        "pipeline: 3 micro-batches, 1,234,000 records landed in 125 s; not all served yet: a "
        "backlog drains (the dashboard is updated every 30 s meanwhile), or batches fail (the "
        "Dagster UI says why)"
    ]

    clock.now = 1200.5
    beats.write(batches=4, records=1_234_567, last_batch_at=1200.0, served_at=1200.0)
    assert progress.lines() == [
        "pipeline: all landed is served after 200.0 s, 1,234,567 records in 4 micro-batches; "
        "the dashboard shows them. From now on a line every 60 s; every batch is in the "
        "Dagster UI"
    ]
    clock.now = 1230.0
    beats.write(batches=20, records=1_240_000, last_batch_at=1229.0, served_at=1229.0)
    assert progress.lines() == []

    clock.now = 1260.5
    beats.write(batches=44, records=1_250_000, last_batch_at=1259.0, served_at=1259.0)
    assert progress.lines() == [
        "pipeline: 40 micro-batches in the last 60 s, 15,433 records landed; the latest ended "
        "1.5 s ago"
    ]
    clock.now = 1321.0
    beats.write(batches=44, records=1_250_000, last_batch_at=1259.0, served_at=1259.0)
    assert progress.lines() == ["pipeline: no micro-batch finished in the last 60 s"]
    clock.now = 1381.5
    beats.write(batches=45, records=1_250_010, last_batch_at=1381.0, served_at=1381.0)
    assert progress.lines() == [
        "pipeline: 1 micro-batch in the last 60 s, 10 records landed; the latest ended 0.5 s ago"
    ]


def test_a_restart_with_little_new_is_served_after_its_first_batch():
    clock = Clock()
    beats = Beats(clock)
    progress = PipelineProgress(beats, clock=clock)
    beats.write()
    progress.lines()
    clock.now = 1002.0
    beats.write(batches=1, records=35, last_batch_at=1001.5, served_at=1001.5)
    assert progress.lines() == [
        "pipeline: all landed is served after 1.5 s, 35 records in 1 micro-batch; the "
        "dashboard shows them. From now on a line every 60 s; every batch is in the Dagster UI"
    ]


def test_a_process_that_died_is_said_once_then_its_successor():
    clock = Clock()
    beats = Beats(clock)
    beats.write(batches=3, last_batch_at=999.0, served_at=999.0)
    progress = PipelineProgress(beats, clock=clock)
    assert progress.lines()[0].startswith("pipeline: micro-batch process")

    beats.write(pid=DEAD_PID, batches=3)
    assert progress.lines() == [
        f"pipeline: the micro-batch process is not running (its process {DEAD_PID} is gone); "
        "the sensor starts another (the Dagster UI says why it ended)"
    ]
    assert progress.lines() == []

    beats.write(run_id="9876543210fedcba", started_at=1005.0)
    assert progress.lines()[0].startswith(
        f"pipeline: micro-batch process {os.getpid()} started (Dagster run 98765432)"
    )


def test_the_heartbeat_of_an_earlier_start_is_not_taken_for_this_ones():
    clock = Clock()
    beats = Beats(clock)
    beats.write(pid=DEAD_PID, at=clock.now - 3600, batches=500)
    progress = PipelineProgress(beats, clock=clock)
    assert progress.lines() == []
    assert progress.lines() == []


def test_no_micro_batch_process_after_a_while_is_said_once():
    clock = Clock()
    beats = Beats(clock)
    beats.write(pid=DEAD_PID, at=clock.now - 3600, batches=500)  # an earlier start's
    progress = PipelineProgress(beats, clock=clock, no_process_after_s=180)
    clock.now = 1179.0
    assert progress.lines() == []
    clock.now = 1181.0
    assert progress.lines() == [
        "pipeline: no micro-batch process after 181 s; microbatch_sensor starts it: is the "
        "sensor on in the Dagster UI (Automation)? Else dagster-daemon.log (process logs, "
        "above) says why not"
    ]
    clock.now = 1400.0
    assert progress.lines() == []
    beats.write(run_id="9876543210fedcba", started_at=1400.0)
    assert progress.lines()[0].startswith("pipeline: micro-batch process")
