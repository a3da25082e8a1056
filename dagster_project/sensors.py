"""The micro-batch sensor: keeps the micro-batch stream running, and says so.

Every few seconds it looks at the `microbatch_stream` run: none active, it requests one (after
a pause if the last one failed before finishing a batch); one running, it checks the run's
heartbeat (see `customer360.pipeline.heartbeat`) and, when the process executing it is gone
(killed, out of memory, a power cut) or frozen, marks the run failed with the reason, tags it
ORPHANED_TAG and starts a new one at once. A run whose process died stays STARTED in Dagster's
storage for good otherwise (unless the code server that launched it saw it die and marked it
failed), and would keep the single writer's place.
"""

import time

from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRecord,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from customer360.config import Settings
from customer360.pipeline.dagster_home import IN_FLIGHT, stopping_marker
from customer360.pipeline.heartbeat import STALE_AFTER_S, read_beat
from dagster_project.resources import MicroBatchResource
from dagster_project.stream import STREAM_JOB, WRITER_TAGS

DEFAULT_INTERVAL_S = 5
# After a stream run failed before finishing a batch, wait this long before the next one.
FAILURE_BACKOFF_S = 30.0
ACTIVE_STATUSES = [DagsterRunStatus(status) for status in IN_FLIGHT]
# Set on a stream run the sensor marked failed because its process is gone; such a failure is
# not the pipeline's own, so the next run is requested at once instead of after the backoff.
ORPHANED_TAG = "c360/orphaned"


def why_stream_run_is_gone(settings: Settings, record: RunRecord, now: float) -> str | None:
    """Why the process executing a STARTED stream run is taken for dead, or None."""
    beat = read_beat(settings)
    if beat is not None and beat.run_id == record.dagster_run.run_id:
        return beat.why_gone(now)
    # Not one beat yet: a new run worker imports Dagster and loads the code (seconds); give it
    # as long as a frozen one.
    started = record.start_time or record.create_timestamp.timestamp()
    if now - started > STALE_AFTER_S:
        return f"it has not beaten once in the {now - started:.0f} s since it started"
    return None


def is_crash_loop(settings: Settings, failed: RunRecord) -> bool:
    """Whether a failed stream run failed before finishing a single batch: started again at
    once it would likely fail again, so the sensor pauses. One that did batches (its process
    killed, every batch failing for minutes) is started again at once; a launch takes seconds
    anyway."""
    if ORPHANED_TAG in failed.dagster_run.tags:
        return False
    beat = read_beat(settings)
    return beat is None or beat.run_id != failed.dagster_run.run_id or beat.batches == 0


def mark_orphaned(instance: DagsterInstance, run: DagsterRun, why: str) -> str:
    reason = f"orphaned: {why}; marked failed by microbatch_sensor, which starts a new stream"
    instance.add_run_tags(run.run_id, {ORPHANED_TAG: why})
    instance.report_run_failed(run, reason)
    return reason


def build_microbatch_sensor(stream_job: JobDefinition, interval_seconds: int = DEFAULT_INTERVAL_S):
    @sensor(
        name="microbatch_sensor",
        job=stream_job,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Keeps one microbatch_stream run going: starts it when none runs (after "
        f"{FAILURE_BACKOFF_S:.0f} s if the last one failed before finishing a batch), and "
        "restarts it when its process is gone or frozen (heartbeat), marking the "
        "dead run failed.",
    )
    def microbatch_sensor(context: SensorEvaluationContext, pipeline: MicroBatchResource):
        instance = context.instance
        now = time.time()
        records = instance.get_run_records(
            RunsFilter(job_name=STREAM_JOB, statuses=ACTIVE_STATUSES), limit=1
        )
        if records:
            run = records[0].dagster_run
            why = None
            if run.status == DagsterRunStatus.STARTED:
                why = why_stream_run_is_gone(pipeline.settings(), records[0], now)
            if why is None:
                beat = read_beat(pipeline.settings())
                batches = (
                    f"; {beat.batches} batches, the last {now - beat.last_batch_at:.1f} s ago"
                    if beat is not None and beat.run_id == run.run_id and beat.last_batch_at
                    else ""
                )
                return SkipReason(f"stream {run.run_id[:8]} is {run.status.value.lower()}{batches}")
            reason = mark_orphaned(instance, run, why)
            context.log.warning(f"run {run.run_id}: {reason}")
            return RunRequest(tags={"c360/trigger": f"restart: run {run.run_id[:8]} {why}"})
        if stopping_marker(pipeline.settings()).exists():
            return SkipReason("c360 is stopping Dagster; no new stream")
        others = instance.get_runs(RunsFilter(statuses=ACTIVE_STATUSES, tags=WRITER_TAGS), limit=1)
        if others:
            return SkipReason(
                f"{others[0].job_name} {others[0].run_id[:8]} holds or awaits the warehouse; the "
                "stream starts again after it"
            )
        last = instance.get_run_records(RunsFilter(job_name=STREAM_JOB), limit=1)
        if last and last[0].dagster_run.status == DagsterRunStatus.FAILURE:
            wait = FAILURE_BACKOFF_S - (now - (last[0].end_time or now))
            if wait > 0 and is_crash_loop(pipeline.settings(), last[0]):
                return SkipReason(
                    f"stream {last[0].dagster_run.run_id[:8]} failed; next start in {wait:.0f} s"
                )
        previous = last[0].dagster_run.status.value.lower() if last else "none yet"
        context.log.info(f"starting the micro-batch stream (previous run: {previous})")
        return RunRequest(tags={"c360/trigger": f"start the stream (previous run: {previous})"})

    return microbatch_sensor
