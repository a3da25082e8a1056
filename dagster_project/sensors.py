"""The micro-batch sensor: every few seconds, a cheap lag probe and at most one run request.

It also recovers runs orphaned by a dead process (see `recover_orphaned_runs`): a run whose
executing process was killed (SIGKILL of the dagster-daemon, an OOM kill, a power cut) stays
STARTED in Dagster's run storage forever, and since the sensor never requests a micro-batch
while one is active, the pipeline would stall behind it.
"""

import os
import time
from pathlib import Path

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
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
# Statuses in which some process is (or should be) executing the run.
EXECUTING_STATUSES = [
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
# Set on a run the sensor marked failed because its process is gone; such a failure is not the
# micro-batch's own, so the next one is requested at once instead of after FAILURE_BACKOFF_S.
ORPHANED_TAG = "c360/orphaned"
# A process that started up to this long after the run's start event is still taken for the
# run's process (clock-tick rounding of /proc start times), so a live executor is never failed.
_START_SLACK_S = 2.0


def _executing_process(instance: DagsterInstance, run: DagsterRun) -> tuple[int, float] | None:
    """(pid, when) of the process executing `run`, from the run's own event log.

    Every Dagster event records the pid of the process that emitted it. RUN_START is emitted by
    the process that executes the run (the run worker; with SyncInMemoryRunLauncher, the
    dagster-daemon itself); before it, RUN_STARTING by the process launching it, which with
    the in-memory launcher is that same daemon. None when neither carries a pid (for instance
    a run record written by hand): such a run is never treated as orphaned.
    """
    for event_type in (DagsterEventType.RUN_START, DagsterEventType.RUN_STARTING):
        records = instance.get_records_for_run(
            run.run_id, of_type=event_type, limit=1, ascending=False
        ).records
        for record in records:
            entry = record.event_log_entry
            if entry.dagster_event is not None and entry.dagster_event.pid:
                return entry.dagster_event.pid, entry.timestamp
    return None


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def process_alive_since(pid: int, since: float) -> bool:
    """Whether a process `pid` that already existed at `since` (epoch seconds) is still alive.

    `os.kill(pid, 0)` says whether some process has that pid; on Linux, /proc tells a zombie
    (dead, not reaped yet) and a process that reused the pid after `since` apart from the
    original. Elsewhere, a live pid is taken for the original process (never a false orphan).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux) or it just exited: assume alive, never a false orphan
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": the comm may hold spaces
    if fields[0] in ("Z", "X"):
        return False  # zombie or dead
    boot = _boot_time()
    if boot is None:
        return True
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    return started <= since + _START_SLACK_S


def recover_orphaned_runs(instance: DagsterInstance, log=None) -> list[str]:
    """Mark failed every executing run whose process is gone; returns their ids.

    Why this is safe: the process that emitted the run's RUN_START (or RUN_STARTING) event is
    the one executing it. If no process with that pid which already existed then is alive, no
    one will ever finish the run; it is reported failed with the reason, tagged ORPHANED_TAG,
    and the queue (one run at a time) and the sensor move on. This relies on the run executing
    on this host, which holds for the local launchers (SyncInMemoryRunLauncher in the daemon,
    DefaultRunLauncher's subprocesses of the code server); with any other launcher nothing is
    touched. Runs of every job are checked: an orphaned run of another job (the nightly
    reconciliation) would block the queue (max_concurrent_runs 1) just the same.
    """
    from dagster._core.launcher import DefaultRunLauncher
    from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher

    if not isinstance(instance.run_launcher, SyncInMemoryRunLauncher | DefaultRunLauncher):
        return []
    recovered = []
    for run in instance.get_runs(RunsFilter(statuses=EXECUTING_STATUSES), limit=20):
        executing = _executing_process(instance, run)
        if executing is None:
            continue
        pid, since = executing
        if process_alive_since(pid, since):
            continue
        # Read again: the run may have finished between the query and now.
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status not in EXECUTING_STATUSES:
            continue
        reason = (
            f"orphaned: process {pid}, which began executing this run at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}, is gone (killed?); "
            "marked failed by microbatch_sensor so the pipeline can go on"
        )
        instance.add_run_tags(run.run_id, {ORPHANED_TAG: f"process {pid} gone"})
        instance.report_run_failed(current, reason)
        if log is not None:
            log.warning(f"run {run.run_id}: {reason}")
        recovered.append(run.run_id)
    return recovered


def build_microbatch_sensor(
    job: JobDefinition | UnresolvedAssetJobDefinition, interval_seconds: int = DEFAULT_INTERVAL_S
):
    @sensor(
        name="microbatch_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Probes the sources' lag every few seconds and requests one micro-batch "
        "when there is something new; never while a micro-batch is queued or running. Runs "
        "whose executing process is gone (a killed daemon) are marked failed first.",
    )
    def microbatch_sensor(context: SensorEvaluationContext, pipeline: MicroBatchResource):
        orphans = recover_orphaned_runs(context.instance, context.log)
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
            if wait > 0 and ORPHANED_TAG not in last[0].dagster_run.tags:
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
            if orphans:
                reason += f"; recovered orphaned run(s) {', '.join(r[:8] for r in orphans)}"
            context.log.info(reason)
            return RunRequest(tags={"c360/trigger": reason[:200]})
        return SkipReason("nothing new; " + lag.describe())

    return microbatch_sensor
