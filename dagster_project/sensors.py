"""The micro-batch sensor: every few seconds, a cheap lag probe and at most one run request."""

import time

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from customer360.pipeline.probe import probe_lag
from dagster_project.resources import MicroBatchResource

DEFAULT_INTERVAL_S = 5
# After a failed micro-batch, wait this long before the next attempt instead of every tick.
FAILURE_BACKOFF_S = 30.0
ACTIVE_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def build_microbatch_sensor(
    job: JobDefinition | UnresolvedAssetJobDefinition, interval_seconds: int = DEFAULT_INTERVAL_S
):
    @sensor(
        name="microbatch_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Probes the sources' lag every few seconds and requests one micro-batch "
        "when there is something new; never while a micro-batch is queued or running.",
    )
    def microbatch_sensor(context: SensorEvaluationContext, pipeline: MicroBatchResource):
        active = context.instance.get_runs(
            RunsFilter(job_name=job.name, statuses=ACTIVE_STATUSES), limit=1
        )
        if active:
            return SkipReason(
                f"micro-batch {active[0].run_id[:8]} is {active[0].status.value.lower()}; "
                "one writer at a time"
            )
        retry_after_failure = False
        last = context.instance.get_run_records(RunsFilter(job_name=job.name), limit=1)
        if last and last[0].dagster_run.status == DagsterRunStatus.FAILURE:
            ended = last[0].end_time or 0.0
            wait = FAILURE_BACKOFF_S - (time.time() - ended)
            if wait > 0:
                return SkipReason(
                    f"micro-batch {last[0].dagster_run.run_id[:8]} failed; next attempt in "
                    f"{wait:.0f} s"
                )
            retry_after_failure = True
        lag = probe_lag(pipeline.settings())
        context.update_cursor(lag.describe())
        if lag.anything_to_do or retry_after_failure:
            reason = lag.describe() + (
                "; retrying a failed micro-batch" if retry_after_failure else ""
            )
            context.log.info(reason)
            return RunRequest(tags={"c360/trigger": reason[:200]})
        return SkipReason("nothing new; " + lag.describe())

    return microbatch_sensor
