"""The micro-batch sensor recovers a run whose executing process was SIGKILLed.

A real Dagster instance (the committed dagster.yaml in a temporary DAGSTER_HOME) and a real
process executing a run (`execute_in_process`, as SyncInMemoryRunLauncher does inside the
daemon); no Kafka or MongoDB: the warehouse never published, so the probe asks for a run
without reading the sources.
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
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_sensor_context,
    job,
    op,
)

from customer360.config import Settings
from customer360.pipeline.dagster_home import prepare_dagster_home
from dagster_project.resources import pipeline_resource
from dagster_project.sensors import (
    ORPHANED_TAG,
    build_microbatch_sensor,
    process_alive_since,
)
from tests.conftest import REPO

# A process that executes a `microbatch` run in place and never finishes it on its own.
RUN_WORKER = """
import sys, time
from dagster import DagsterInstance, job, op

@op
def extract():
    print("executing", flush=True)
    time.sleep(600)

@job(name="microbatch")
def microbatch():
    extract()

with DagsterInstance.from_config(sys.argv[1]) as instance:
    microbatch.execute_in_process(instance=instance, run_id=sys.argv[2])
"""


@op
def _noop():
    pass


@job(name="microbatch")
def _microbatch():
    _noop()


@pytest.fixture
def instance(tmp_path):
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", home=tmp_path)
    home = prepare_dagster_home(settings)
    with DagsterInstance.from_config(str(home)) as instance:
        yield settings, home, instance


def evaluate(instance, settings):
    sensor = build_microbatch_sensor(_microbatch)
    with build_sensor_context(
        instance=instance, resources={"pipeline": pipeline_resource(settings)}
    ) as context:
        return sensor(context)


def test_a_run_whose_process_was_killed_is_marked_failed_and_the_sensor_goes_on(instance):
    settings, home, instance = instance
    run_id = str(uuid.uuid4())
    worker = subprocess.Popen(
        [sys.executable, "-c", RUN_WORKER, str(home), run_id],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout.readline().strip() == "executing"
        run = instance.get_run_by_id(run_id)
        assert run.status == DagsterRunStatus.STARTED

        # While its process lives, the run is a micro-batch in flight: one writer at a time.
        busy = evaluate(instance, settings)
        assert isinstance(busy, SkipReason) and "one writer" in busy.skip_message
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED

        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED  # stuck

        # The next tick marks it failed with the reason and requests the next micro-batch at
        # once (no failure backoff: the failure is not the micro-batch's own).
        request = evaluate(instance, settings)
        assert isinstance(request, RunRequest), request
        assert "recovered orphaned run" in request.tags["c360/trigger"]
        run = instance.get_run_by_id(run_id)
        assert run.status == DagsterRunStatus.FAILURE
        assert run.tags[ORPHANED_TAG] == f"process {worker.pid} gone"
        failures = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
        assert f"orphaned: process {worker.pid}" in failures[-1].dagster_event.message

        # Recovered once: later ticks neither touch it again nor wait for a backoff.
        assert isinstance(evaluate(instance, settings), RunRequest)
        assert len(instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)) == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_run_without_a_recorded_process_is_left_alone(instance):
    """A run record without RUN_START/RUN_STARTING pids (written by hand) is never failed."""
    from dagster import DagsterRun

    settings, _, instance = instance
    run = instance.add_run(
        DagsterRun(job_name="microbatch", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED)
    )
    busy = evaluate(instance, settings)
    assert isinstance(busy, SkipReason) and "one writer" in busy.skip_message
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED


def test_process_alive_since_tells_a_reused_pid_from_the_original():
    assert process_alive_since(os.getpid(), time.time())
    # This process did not exist at the epoch: a pid seen then is another process's.
    assert not process_alive_since(os.getpid(), 0.0)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert not process_alive_since(finished.pid, time.time())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process_alive_since(zombie.pid, time.time()):
        time.sleep(0.05)  # exited but not reaped yet: a zombie is not alive
    assert not process_alive_since(zombie.pid, time.time())
    zombie.wait()
