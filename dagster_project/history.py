"""Bounded instance storage: runs older than a week are deleted by an hourly schedule.

Dagster purges sensor ticks itself (dagster.yaml `retention`) but keeps runs forever; a sensor
that runs a micro-batch every few seconds while data flows would grow the run storage without
bound.
"""

from datetime import UTC, datetime, timedelta

from dagster import (
    DefaultScheduleStatus,
    OpExecutionContext,
    RunsFilter,
    ScheduleDefinition,
    job,
    op,
)

KEEP_RUNS = timedelta(days=7)
DELETE_PER_TICK = 5_000


@op
def delete_old_runs(context: OpExecutionContext) -> int:
    cutoff = datetime.now(UTC) - KEEP_RUNS
    records = context.instance.get_run_records(
        RunsFilter(created_before=cutoff), limit=DELETE_PER_TICK, ascending=True
    )
    for record in records:
        context.instance.delete_run(record.dagster_run.run_id)
    context.log.info(f"deleted {len(records)} runs created before {cutoff:%Y-%m-%d %H:%M} UTC")
    return len(records)


@job(description="Delete runs (and their event logs) older than a week.")
def prune_history():
    delete_old_runs()


prune_history_schedule = ScheduleDefinition(
    job=prune_history,
    cron_schedule="17 * * * *",
    default_status=DefaultScheduleStatus.RUNNING,
)
