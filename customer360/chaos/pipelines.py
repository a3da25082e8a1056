"""The pipeline under test, two ways: the plain micro-batch loop, or Dagster as `c360 up` runs it.

Both answer the soak's questions the same way: is a micro-batch in flight (to kill it there),
when did the first successful batch that began after a moment end (recovery), has the pipeline
drained after the stream stopped, and how did every micro-batch run end, with the failure
message of each failed one (`batch_runs`, judged by `customer360/chaos/runs.py`).

- `LoopPipeline`: `python -m customer360.chaos.loop` (a warm `MicroBatch` back to back); the
  fault SIGKILLs that process mid-batch and starts another.
- `DagsterPipeline`: dagster-webserver and dagster-daemon on workspace.yaml with a DAGSTER_HOME of
  the run's own (the committed dagster.yaml: runs execute inside the daemon through
  SyncInMemoryRunLauncher, one at a time, requested by the micro-batch sensor). The fault
  SIGKILLs the daemon while a micro-batch run is STARTED, then starts a new daemon; the run it
  was executing stays STARTED in Dagster's storage until the sensor finds its process gone and
  marks it failed (dagster_project/sensors.py, `recover_orphaned_runs`).
"""

from __future__ import annotations

import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from customer360.chaos import faults as f
from customer360.chaos.runs import BatchRun
from customer360.config import Settings
from customer360.services.processes import stop_process_groups

MICROBATCH_JOB = "microbatch"


def serving_as_of(settings: Settings) -> float | None:
    """The greatest source time the published serving copy reflects (epoch seconds)."""
    import duckdb

    try:
        con = duckdb.connect(str(settings.serving_path), read_only=True)
    except Exception:  # noqa: BLE001 - not published yet, or being replaced
        return None
    try:
        value = con.execute("select max(data_as_of) from serving_publication").fetchone()[0]
    except Exception:  # noqa: BLE001
        return None
    finally:
        con.close()
    from datetime import UTC

    return value.replace(tzinfo=UTC).timestamp() if value is not None else None


class LoopPipeline:
    kill_kind = "microbatch_kill"
    description = "the plain micro-batch loop (python -m customer360.chaos.loop), not Dagster"

    def __init__(self, settings: Settings, work: Path):
        self.settings = settings
        self.loop = f.LoopProcess(settings, work)

    def start(self) -> None:
        self.loop.start()

    def alive(self) -> bool:
        return self.loop.alive()

    def ensure_running(self) -> None:
        if not self.loop.alive():
            self.loop.start()

    def started(self) -> bool:
        if not self.loop.alive() and self.loop.first_success_after(0) is None:
            raise RuntimeError(
                f"the micro-batch loop did not start; see {self.loop.log_dir}/loop-1.log"
            )
        return self.loop.first_success_after(0) is not None

    def kill_mid_batch(self, rng: random.Random) -> tuple[float, str]:
        loop = self.loop
        for attempt in range(20):
            deadline = time.monotonic() + 60
            while not loop.in_flight() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, min(2.0, loop.median_batch_seconds())))
            if loop.in_flight():
                at = time.time()
                loop.kill()
                detail = f"SIGKILL mid-batch (attempt {attempt + 1})"
                break
        else:
            at = time.time()
            loop.kill()
            detail = "SIGKILL (no batch caught in flight)"
        loop.start()
        return at, detail

    def first_success_after(self, moment: float) -> float | None:
        return self.loop.first_success_after(moment)

    def drained(self, stopped_at: float) -> bool:
        """Two successful batches in a row, begun after the stream stopped, landed nothing."""
        ends = [e for e in self.loop.snapshot() if e.event == "end" and e.at > stopped_at + 1]
        return len(ends) >= 2 and all(
            e.fields["success"] and not e.fields["records"] and not e.fields["built"]
            for e in ends[-2:]
        )

    def batch_runs(self) -> list[BatchRun]:
        """Every batch the loop processes ended or died in (not the one in flight now)."""
        loop = self.loop
        began: dict[tuple[int, int], float] = {}
        runs = []
        for event in loop.snapshot():
            key = (event.process, event.fields.get("batch", 0))
            if event.event == "begin":
                began[key] = event.at
            elif event.event == "end":
                success = bool(event.fields["success"])
                message = "" if success else loop_errors_text(event.fields.get("errors"))
                at = began.pop(key, event.at - event.fields["seconds"])
                runs.append(BatchRun(f"loop-{key[0]}#{key[1]}", at, event.at, success, message))
        for (process, batch), at in began.items():
            if process == loop.generation and loop.alive():
                continue  # in flight
            killed_at = loop.killed.get(process)
            message = (
                "the loop process was SIGKILLed mid-batch by the soak"
                if killed_at is not None
                else f"the loop process exited mid-batch; see {loop.log_dir}/loop-{process}.log"
            )
            runs.append(BatchRun(f"loop-{process}#{batch}", at, killed_at, False, message, True))
        return runs

    def summary(self) -> list[str]:
        ends = [e for e in self.loop.snapshot() if e.event == "end"]
        failed = sum(1 for e in ends if not e.fields["success"])
        return [f"micro-batches: {len(ends)} ({failed} failed) in {self.loop.generation} "
                "loop processes"]  # fmt: skip

    def stop(self, timeout: float = 120) -> None:
        self.loop.stop(timeout)


class DagsterPipeline:
    kill_kind = "daemon_kill"
    description = (
        "Dagster as `c360 up` runs it (webserver + daemon, runs inside the daemon); "
        "daemon_kill = SIGKILL of the dagster-daemon while a micro-batch run is STARTED"
    )

    def __init__(self, settings: Settings, work: Path):
        from customer360.pipeline.dagster_home import prepare_dagster_home

        self.settings = settings
        self.work = work
        self.home = prepare_dagster_home(settings)
        self.env = settings.environment() | {"DAGSTER_HOME": str(self.home)}
        self.webserver: subprocess.Popen | None = None
        self.daemon: subprocess.Popen | None = None
        self.daemons: list[subprocess.Popen] = []  # every daemon started (their sessions)
        self.killed_runs: list[str] = []
        self._instance = None
        self._idle: tuple[str, float] | None = None  # (last run, idle since)
        self.port: int | None = None

    # -- processes ------------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        from customer360.pipeline.dagster_home import REPO

        with (self.work / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped with its children
            )

    def _start_daemon(self) -> None:
        from customer360.pipeline.dagster_home import WORKSPACE_YAML

        bin_dir = Path(sys.executable).parent
        self.daemon = self._spawn(
            "dagster-daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(WORKSPACE_YAML)]
        )
        self.daemons.append(self.daemon)

    def start(self) -> None:
        from customer360.pipeline.dagster_home import WORKSPACE_YAML
        from customer360.services.processes import free_port

        # Create the instance's storage (SQLite schemas) here first: the webserver, the daemon
        # and this process creating a new DAGSTER_HOME's databases at once race (alembic stamp).
        instance = self.instance
        _ = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        instance.get_runs(limit=1)
        bin_dir = Path(sys.executable).parent
        self.port = free_port()
        self.webserver = self._spawn(
            "dagster-webserver",
            [str(bin_dir / "dagster-webserver"), "-w", str(WORKSPACE_YAML), "-h", "127.0.0.1",
             "-p", str(self.port)],
        )  # fmt: skip
        self._start_daemon()

    def alive(self) -> bool:
        return self.daemon is not None and self.daemon.poll() is None

    def ensure_running(self) -> None:
        if not self.alive():
            self._start_daemon()

    @property
    def instance(self):
        if self._instance is None:
            from dagster import DagsterInstance

            self._instance = DagsterInstance.from_config(str(self.home))
        return self._instance

    def runs(self) -> list:
        """The micro-batch run records, oldest first."""
        from dagster import RunsFilter

        records = self.instance.get_run_records(RunsFilter(job_name=MICROBATCH_JOB))
        return sorted(records, key=lambda r: r.create_timestamp)

    def started(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"dagster-daemon exited; see {self.work}/dagster-daemon.log")
        return self.first_success_after(0) is not None

    def _started_run(self):
        """The micro-batch run the current daemon is executing, if any.

        A run left STARTED by a daemon killed before (not yet marked failed by the sensor) is
        not one: its RUN_START event names the killed daemon's pid.
        """
        from dagster import DagsterEventType, DagsterRunStatus

        for record in reversed(self.runs()):
            if record.dagster_run.status != DagsterRunStatus.STARTED:
                continue
            starts = self.instance.get_records_for_run(
                record.dagster_run.run_id, of_type=DagsterEventType.RUN_START, limit=1
            ).records
            event = starts[0].event_log_entry.dagster_event if starts else None
            if event is not None and self.daemon is not None and event.pid == self.daemon.pid:
                return record
        return None

    def median_run_seconds(self) -> float:
        seconds = [r.end_time - r.start_time for r in self.runs() if r.start_time and r.end_time]
        return statistics.median(seconds) if seconds else 2.0

    def kill_mid_batch(self, rng: random.Random) -> tuple[float, str]:
        """SIGKILL the daemon while a micro-batch run is STARTED (executing in it), restart it."""
        detail = "SIGKILL of dagster-daemon (no run caught in flight)"
        at = time.time()
        for attempt in range(20):
            deadline = time.monotonic() + 60
            while self._started_run() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0, min(2.0, self.median_run_seconds())))
            record = self._started_run()
            if record is not None:
                at = time.time()
                self.daemon.send_signal(signal.SIGKILL)  # the daemon only, as a crash would
                self.daemon.wait()
                run_id = record.dagster_run.run_id
                self.killed_runs.append(run_id)
                detail = f"SIGKILL of dagster-daemon mid-run {run_id[:8]} (attempt {attempt + 1})"
                break
        else:
            at = time.time()
            self.daemon.send_signal(signal.SIGKILL)
            self.daemon.wait()
        self._start_daemon()
        return at, detail

    def first_success_after(self, moment: float) -> float | None:
        from dagster import DagsterRunStatus

        ends = [
            r.end_time
            for r in self.runs()
            if r.dagster_run.status == DagsterRunStatus.SUCCESS
            and r.start_time is not None
            and r.start_time > moment
            and r.end_time is not None
        ]
        return min(ends) if ends else None

    def drained(self, stopped_at: float) -> bool:
        """No run active, the last one began after the stream stopped and succeeded, and the
        sensor's probe finds nothing to land or build (twice, a sensor interval apart)."""
        from dagster import DagsterRunStatus

        from customer360.pipeline.probe import probe_lag

        runs = self.runs()
        if not runs:
            return False
        last = runs[-1]
        if (
            last.dagster_run.status != DagsterRunStatus.SUCCESS
            or last.start_time is None
            or last.start_time <= stopped_at + 1
        ):
            return False
        if probe_lag(self.settings).anything_to_do:
            self._idle = None
            return False
        if self._idle is None or self._idle[0] != last.dagster_run.run_id:
            self._idle = (last.dagster_run.run_id, time.time())
            return False
        return time.time() - self._idle[1] > self.settings.sensor_interval_s + 2

    def batch_runs(self) -> list[BatchRun]:
        """Every finished micro-batch run, with its failure message (storage of the soak's own
        DAGSTER_HOME, read through the public DagsterInstance API)."""
        from dagster_project.sensors import ORPHANED_TAG

        runs = []
        for record in self.runs():
            run = record.dagster_run
            if not run.is_finished:
                continue  # still queued or in progress: `stuck_runs` reports it
            began = record.start_time or record.create_timestamp.timestamp()
            ended = record.end_time or record.update_timestamp.timestamp()
            message = "" if run.is_success else run_failure_message(self.instance, run.run_id)
            orphaned = ORPHANED_TAG in run.tags
            runs.append(BatchRun(run.run_id, began, ended, run.is_success, message, orphaned))
        return runs

    def summary(self) -> list[str]:
        from dagster import DagsterRunStatus

        from dagster_project.sensors import ORPHANED_TAG

        runs = self.runs()
        by_status: dict[str, int] = {}
        for record in runs:
            status = record.dagster_run.status.value
            by_status[status] = by_status.get(status, 0) + 1
        orphaned = [r for r in runs if ORPHANED_TAG in r.dagster_run.tags]
        not_recovered = [
            run_id
            for run_id in self.killed_runs
            if (run := self.instance.get_run_by_id(run_id)) is not None
            and run.status != DagsterRunStatus.FAILURE
        ]
        lines = [
            "dagster runs: " + ", ".join(f"{s} {n}" for s, n in sorted(by_status.items()))
            + f"; {len(self.daemons)} daemon processes",
            f"dagster orphaned runs marked failed by the sensor: {len(orphaned)} "
            f"(runs in flight when the daemon was killed: {len(self.killed_runs)})",
        ]  # fmt: skip
        if not_recovered:
            lines.append(f"dagster runs killed but not marked failed: {not_recovered}")
        return lines

    def stuck_runs(self) -> list[str]:
        """Runs still queued or in progress (after the drain there must be none)."""
        from dagster_project.sensors import ACTIVE_STATUSES

        return [
            f"{r.dagster_run.run_id[:8]} {r.dagster_run.status.value}"
            for r in self.runs()
            if r.dagster_run.status in ACTIVE_STATUSES
        ]

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM the webserver's and every daemon's process group (a killed daemon may have
        left its code server behind), then SIGKILL what is left."""
        stop_process_groups([p for p in (self.webserver, *self.daemons) if p is not None], timeout)
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None


def run_failure_message(instance, run_id: str) -> str:
    """Why a run failed, one line: each failed step's error (a `Failure`'s description and
    metadata, else the innermost exception), else the run's failure or cancel event."""
    from dagster import DagsterEventType

    records = instance.get_records_for_run(
        run_id,
        of_type={
            DagsterEventType.STEP_FAILURE,
            DagsterEventType.RUN_FAILURE,
            DagsterEventType.RUN_CANCELED,
        },
    ).records
    steps, run = [], []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.is_step_failure:
            steps.append(f"{event.step_key}: {_step_failure_text(event.step_failure_data)}")
        else:
            text = event.message or record.event_log_entry.message or event.event_type_value
            data = event.event_specific_data
            if getattr(data, "error", None) is not None:
                text += f" ({_error_text(data.error)})"
            run.append(text)
    return "; ".join(steps or run) or "no failure event recorded"


def loop_errors_text(errors) -> str:
    """The `errors` of a loop batch's `end` line (per source, dbt failures, or the exception)."""
    if isinstance(errors, dict):
        errors = [f"{source}: {error}" for source, error in errors.items()]
    if isinstance(errors, list):
        errors = "; ".join(str(error) for error in errors)
    return str(errors) if errors else "no error reported"


def _one_line(text: str) -> str:
    return " | ".join(
        line.strip().removeprefix("- ") for line in str(text).splitlines() if line.strip()
    )


def _error_text(error) -> str:
    """The innermost cause of a Dagster error record (its `message` and `cause` fields)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return _one_line(error.message)


def _step_failure_text(data) -> str:
    if data is None:
        return "failed"
    user = data.user_failure_data
    if user is not None:
        details = [_one_line(value.value) for value in (user.metadata or {}).values()]
        return ": ".join([user.description or "failed", *[d for d in details if d]])
    return _error_text(data.error) if data.error is not None else "failed"
