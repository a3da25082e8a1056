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
from dagster_project.propensity import build_propensity
from dagster_project.reconciliation import build_reconciliation
from dagster_project.resources import pipeline_resource
from dagster_project.sensors import build_microbatch_sensor
from dagster_project.stream import WRITER_TAGS, microbatch_stream

MICROBATCH_JOB = "microbatch"
DATA_TESTS_JOB = "dbt_data_tests"
# Run monitoring (dagster.yaml) fails a writer that hangs past this, so that it does not keep the
# warehouse from the stream for good.
DATA_TESTS_TAGS = WRITER_TAGS | {"dagster/max_runtime": str(30 * 60)}
RECONCILE_TAGS = WRITER_TAGS | {"dagster/max_runtime": str(3 * 3600)}
PROPENSITY_TAGS = WRITER_TAGS | {"dagster/max_runtime": str(3600)}


def build_definitions(settings: Settings, sensor_interval_s: int | None = None):
    dbt_project = dbt_project_for(settings)
    dbt_models = build_dbt_assets(dbt_project)
    mart_keys = sorted(key for key in dbt_models.keys if key.path[0] == "marts")
    reconcile_check, reconcile_job, reconcile_schedule = build_reconciliation(
        mart_keys, RECONCILE_TAGS
    )
    # One micro-batch as a run of its own, for an operator (the live pipeline is the
    # microbatch_stream run). Without the dbt tests' asset checks: Dagster writes an event per
    # planned check when it creates a run (~120 here, ~2 s).
    microbatch_job = define_asset_job(
        MICROBATCH_JOB,
        selection=AssetSelection.assets(raw_landing, dbt_models).without_checks(),
        executor_def=in_process_executor,
        tags=WRITER_TAGS,
        description="One micro-batch as a run of its own: extract every source, build the dbt "
        "models downstream of sources with new batches, publish. The live pipeline is the "
        "microbatch_stream job's long-running run; this one queues until the stream yields.",
    )
    data_tests_job = define_asset_job(
        DATA_TESTS_JOB,
        selection=AssetSelection.checks_for_assets(dbt_models)
        - AssetSelection.checks(reconcile_check),
        executor_def=in_process_executor,
        # Tests only read, but only the writer's process may open the warehouse.
        tags=DATA_TESTS_TAGS,
        description="`dbt test`: every dbt data test, reported as the asset checks of the "
        "models. The stream runs them itself every 15 minutes; this job is for an operator.",
    )
    propensity_model, propensity_job, propensity_schedule = build_propensity(PROPENSITY_TAGS)
    return Definitions(
        assets=[raw_landing, dbt_models, propensity_model],
        asset_checks=[reconcile_check],
        jobs=[
            microbatch_stream,
            microbatch_job,
            data_tests_job,
            reconcile_job,
            prune_history,
            propensity_job,
        ],
        schedules=[reconcile_schedule, prune_history_schedule, propensity_schedule],
        sensors=[
            build_microbatch_sensor(
                microbatch_stream, sensor_interval_s or settings.sensor_interval_s
            )
        ],
        resources={
            "pipeline": pipeline_resource(settings),
            # For operators' own dbt ops; micro-batches call dbt in-process via `pipeline`.
            "dbt": DbtCliResource(
                project_dir=dbt_project, dbt_executable=str(Path(sys.executable).parent / "dbt")
            ),
        },
    )
