"""Stopping Dagster (`c360 up`'s Ctrl-C, `c360 dagster`'s stop) against a real Dagster instance
(the committed dagster.yaml in a temporary DAGSTER_HOME): runs in flight end CANCELED."""

from __future__ import annotations

import uuid

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from customer360.config import Settings
from customer360.pipeline.dagster_home import prepare_dagster_home, terminate_runs_in_flight


@pytest.fixture
def instance(tmp_path):
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", home=tmp_path)
    with DagsterInstance.from_config(str(prepare_dagster_home(settings))) as instance:
        yield instance


@pytest.mark.parametrize("status", [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING])
def test_a_run_not_executing_yet_is_canceled_not_terminated(instance, status):
    # A run whose worker is still starting (the hourly prune_history launched seconds before
    # the stop): asked to terminate, its worker exited and Dagster marked the run FAILURE.
    run = instance.add_run(
        DagsterRun(job_name="prune_history", run_id=str(uuid.uuid4()), status=status)
    )

    lines = terminate_runs_in_flight(instance, timeout=2.0)

    assert lines == [f"run {run.run_id[:8]} (prune_history) ended CANCELED"]
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED
