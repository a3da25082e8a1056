"""The micro-batch sensor keeps the stream going: it starts it, leaves a live one alone, and
restarts one whose process died, marking the dead run failed.

A real Dagster instance (the committed dagster.yaml in a temporary DAGSTER_HOME) and a real
process executing a `microbatch_stream` run with the stream's heartbeat; no Kafka or MongoDB.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_sensor_context,
    job,
    op,
)

from customer360.config import Settings
from customer360.pipeline.dagster_home import prepare_dagster_home, stopping_marker
from customer360.pipeline.heartbeat import Beat, Heartbeat, read_beat
from customer360.services.pid_files import process_identity
from dagster_project.resources import pipeline_resource
from dagster_project.sensors import ORPHANED_TAG, build_microbatch_sensor
from dagster_project.stream import STREAM_JOB, WRITER_TAGS
from tests.conftest import REPO

# A process that executes a stream run in place, beating, and never finishes it on its own.
RUN_WORKER = """
import sys, time
from pathlib import Path
from dagster import DagsterInstance, job, op
from customer360.config import Settings
from customer360.pipeline.heartbeat import Heartbeat

@op
def run_microbatches(context):
    settings = Settings(warehouse=Path(sys.argv[3]), home=Path(sys.argv[4]))
    with Heartbeat(settings, context.run_id) as heartbeat:
        heartbeat.batch_done()
        print("executing", flush=True)
        time.sleep(600)

@job(name="microbatch_stream")
def microbatch_stream():
    run_microbatches()

with DagsterInstance.from_config(sys.argv[1]) as instance:
    microbatch_stream.execute_in_process(instance=instance, run_id=sys.argv[2])
"""


@op
def _noop():
    pass


@job(name=STREAM_JOB)
def _stream():
    _noop()


@pytest.fixture
def instance(tmp_path):
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", home=tmp_path)
    home = prepare_dagster_home(settings)
    with DagsterInstance.from_config(str(home)) as instance:
        yield settings, home, instance


def evaluate(instance, settings):
    sensor = build_microbatch_sensor(_stream)
    with build_sensor_context(
        instance=instance, resources={"pipeline": pipeline_resource(settings)}
    ) as context:
        return sensor(context)


def test_no_stream_running_starts_one(instance):
    settings, _, instance = instance
    request = evaluate(instance, settings)
    assert isinstance(request, RunRequest)
    assert "start the stream" in request.tags["c360/trigger"]


def test_a_stream_whose_process_was_killed_is_marked_failed_and_started_again(instance):
    settings, home, instance = instance
    run_id = str(uuid.uuid4())
    worker = subprocess.Popen(
        [sys.executable, "-c", RUN_WORKER, str(home), run_id, str(settings.warehouse),
         str(settings.home)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert worker.stdout.readline().strip() == "executing"
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED

        # While its process beats, the stream is left alone: one writer at a time.
        busy = evaluate(instance, settings)
        assert isinstance(busy, SkipReason), busy
        assert busy.skip_message.startswith(f"stream {run_id[:8]} is started")
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED

        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED  # stuck

        # The next tick marks it failed with the reason and starts the stream again at once
        # (no failure backoff: the failure is not the pipeline's own).
        request = evaluate(instance, settings)
        assert isinstance(request, RunRequest), request
        assert f"restart: run {run_id[:8]}" in request.tags["c360/trigger"]
        run = instance.get_run_by_id(run_id)
        assert run.status == DagsterRunStatus.FAILURE
        assert run.tags[ORPHANED_TAG] == f"its process {worker.pid} is gone"
        failures = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
        assert f"orphaned: its process {worker.pid} is gone" in failures[-1].dagster_event.message

        # Recovered once: later ticks neither touch it again nor wait for a backoff.
        assert isinstance(evaluate(instance, settings), RunRequest)
        assert len(instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)) == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_stream_that_failed_on_its_own_is_started_again_after_a_pause(instance):
    settings, _, instance = instance
    run = instance.add_run(DagsterRun(job_name=STREAM_JOB, run_id=str(uuid.uuid4())))
    instance.report_run_failed(run, "every micro-batch failed")
    waiting = evaluate(instance, settings)
    assert isinstance(waiting, SkipReason) and "next start in" in waiting.skip_message


def test_a_stream_that_did_batches_before_it_failed_is_started_again_at_once(instance):
    settings, _, instance = instance
    run = instance.add_run(DagsterRun(job_name=STREAM_JOB, run_id=str(uuid.uuid4())))
    with Heartbeat(settings, run.run_id) as heartbeat:
        heartbeat.batch_done()
    instance.report_run_failed(run, "its worker was killed")
    assert isinstance(evaluate(instance, settings), RunRequest)


def test_a_stream_killed_right_after_its_first_batch_is_started_again_at_once(instance):
    """The first batch is on file at once, not at the next beat: a run whose worker is killed
    right after it is not taken for one that never finished a batch (in the chaos soak, kills
    in quick succession each waited the crash-loop pause)."""
    settings, _, instance = instance
    run = instance.add_run(DagsterRun(job_name=STREAM_JOB, run_id=str(uuid.uuid4())))
    with Heartbeat(settings, run.run_id) as heartbeat:
        heartbeat.batch_done()
        on_file = read_beat(settings)
        instance.report_run_failed(run, "its worker was killed")
        assert on_file is not None and on_file.batches == 1
        assert isinstance(evaluate(instance, settings), RunRequest)


def test_no_stream_is_started_while_c360_stops_dagster(instance):
    settings, _, instance = instance
    marker = stopping_marker(settings)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("1\n")
    skip = evaluate(instance, settings)
    assert isinstance(skip, SkipReason) and "stopping" in skip.skip_message


def test_another_writer_keeps_the_stream_from_starting(instance):
    settings, _, instance = instance
    instance.add_run(
        DagsterRun(
            job_name="dbt_data_tests",
            run_id=str(uuid.uuid4()),
            status=DagsterRunStatus.STARTED,
            tags=WRITER_TAGS,
        )
    )
    skip = evaluate(instance, settings)
    assert isinstance(skip, SkipReason) and "dbt_data_tests" in skip.skip_message


def test_a_beat_tells_a_live_process_from_a_dead_or_frozen_one():
    import os

    now = time.time()
    assert Beat(pid=os.getpid(), run_id="r", at=now).why_gone(now) is None
    assert "not beaten for 61 s" in Beat(pid=os.getpid(), run_id="r", at=now - 61).why_gone(now)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert "is gone" in Beat(pid=finished.pid, run_id="r", at=now).why_gone(now)


def test_a_beat_whose_pid_is_another_process_now_is_gone_at_once():
    # After a reboot the beat's pid may be another live process's: the sensor waited the 60 s
    # heartbeat limit before starting a new stream run.
    now = time.time()
    boot, ticks = process_identity(os.getpid()).split("/")
    earlier = f"{boot}/{int(ticks) - 1}"
    beat = Beat(pid=os.getpid(), run_id="r", at=now, identity=earlier)
    assert (
        beat.why_gone(now)
        == f"its process {os.getpid()} is gone (the pid is another process's now)"
    )
    mine = Beat(pid=os.getpid(), run_id="r", at=now, identity=process_identity(os.getpid()))
    assert mine.why_gone(now) is None
    assert Beat(pid=os.getpid(), run_id="r", at=now).why_gone(now) is None  # an older beat
