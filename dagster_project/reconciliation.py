"""Nightly: rebuild the marts from raw into a scratch database and compare with the live ones."""

from dagster import (
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    ScheduleDefinition,
    in_process_executor,
    job,
    op,
)

from customer360.pipeline.reconcile import reconcile
from dagster_project.resources import MicroBatchResource

WRITER_TAG = "c360/writer"


@op
def compare_rebuilt_marts(context: OpExecutionContext, pipeline: MicroBatchResource) -> None:
    result = reconcile(pipeline.microbatch())
    for line in result.summary_lines():
        context.log.info(line)
    metadata = {name: MetadataValue.json(vars(c)) for name, c in result.marts.items()} | {
        "seconds": round(result.seconds, 1)
    }
    context.log.info(f"reconciled {len(result.marts)} marts in {result.seconds:.1f} s")
    if not result.matches:
        raise Failure("marts differ from a full rebuild from raw", metadata=metadata)


@job(
    executor_def=in_process_executor,
    tags={WRITER_TAG: "warehouse"},
    description="Rebuild every model from raw with --full-refresh in a scratch database and "
    "compare each mart with the live, incrementally built one.",
)
def reconcile_marts():
    compare_rebuilt_marts()


reconcile_marts_schedule = ScheduleDefinition(
    job=reconcile_marts,
    cron_schedule="30 3 * * *",
    default_status=DefaultScheduleStatus.RUNNING,
)
