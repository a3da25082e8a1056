"""The one place that assembles customer360's Dagster definitions."""

from __future__ import annotations

import sys
from pathlib import Path

from dagster import (
    AssetSelection,
    Definitions,
    define_asset_job,
    in_process_executor,
)
from dagster_dbt import DbtCliResource

from customer360.config import Settings
from dagster_project.assets import build_dbt_assets, dbt_project_for, raw_landing
from dagster_project.history import prune_history, prune_history_schedule
from dagster_project.reconciliation import reconcile_marts, reconcile_marts_schedule
from dagster_project.resources import pipeline_resource
from dagster_project.sensors import build_microbatch_sensor

MICROBATCH_JOB = "microbatch"
# Runs with this tag write the warehouse; dagster.yaml limits them to one at a time.
WRITER_TAG = "c360/writer"


def build_definitions(settings: Settings, sensor_interval_s: int | None = None):
    dbt_project = dbt_project_for(settings)
    dbt_models = build_dbt_assets(dbt_project)
    microbatch_job = define_asset_job(
        MICROBATCH_JOB,
        selection=AssetSelection.assets(raw_landing, dbt_models),
        executor_def=in_process_executor,
        tags={WRITER_TAG: "warehouse"},
        description="One micro-batch: extract every source, build the dbt models downstream of "
        "sources with new batches, publish positions for the sensor's probe.",
    )
    return Definitions(
        assets=[raw_landing, dbt_models],
        jobs=[microbatch_job, reconcile_marts, prune_history],
        schedules=[reconcile_marts_schedule, prune_history_schedule],
        sensors=[
            build_microbatch_sensor(microbatch_job, sensor_interval_s or settings.sensor_interval_s)
        ],
        resources={
            "pipeline": pipeline_resource(settings),
            # For operators' own dbt ops; micro-batches call dbt in-process via `pipeline`.
            "dbt": DbtCliResource(
                project_dir=dbt_project, dbt_executable=str(Path(sys.executable).parent / "dbt")
            ),
        },
    )
