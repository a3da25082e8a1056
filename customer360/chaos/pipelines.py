"""The pipeline under test, two ways: the plain micro-batch loop, or Dagster as `c360 up` runs it.

Both answer the soak's questions the same way: inject a process kill (`kill_kinds`, `kill`),
when did the first successful batch that began after a moment end (recovery), has the pipeline
drained after the stream stopped, and how did every micro-batch run end, with the failure
message of each failed one (`batch_runs`, judged by `customer360/chaos/runs.py`).

- `LoopPipeline`: `python -m customer360.chaos.loop` (a warm `MicroBatch` back to back); the
  fault SIGKILLs that process mid-batch and starts another.
- `DagsterPipeline`: Dagster's code server, dagster-webserver and dagster-daemon as `c360 up`
  starts them (`start_code_server`), with a DAGSTER_HOME of the run's own (the committed
  dagster.yaml: Dagster's default run launcher). The sensor keeps
  one long-running `microbatch_stream` run going, doing micro-batches back to back in a run
  worker process (a child of the code server) whose pid, run id and batch count are
  in the heartbeat file (`customer360/pipeline/heartbeat.py`). Two kills: `microbatch_kill`
  SIGKILLs that worker while a batch is in flight (the run is failed, by Dagster's code server
  or by the sensor from the heartbeat, and the sensor starts a new stream run);
  `daemon_kill` SIGKILLs the daemon and starts a new one (the stream run goes on meanwhile).
  What the batches did is read from the stream runs' logs (`customer360/bench/dagster_stream.py`).
"""

from __future__ import annotations

import os
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
from customer360.services.processes import process_alive, stop_process_groups


class LoopPipeline:
    kill_kinds = ("microbatch_kill",)
    description = "the plain micro-batch loop (python -m customer360.chaos.loop), not Dagster"

    def __init__(self, settings: Settings, work: Path):
        self.settings = settings
        self.loop = f.LoopProcess(settings, work)
        self.stuck: list[str] = []  # nothing stays in flight: SIGTERM ends it between batches

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

    def kill(self, kind: str, rng: random.Random) -> tuple[float, float, str, str]:
        """SIGKILL the loop process mid-batch and start another; returns (at, back_at, detail,
        the process killed)."""
        if kind != "microbatch_kill":
            raise ValueError(f"not a process kill of loop mode: {kind}")
        process = f"loop-{self.loop.generation}"
        at, detail = self.kill_mid_batch(rng)
        return at, time.time(), detail, process

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
                runs.append(BatchRun(f"loop-{key[0]}#{key[1]}", at, event.at, success, message,
                                     process=f"loop-{key[0]}"))  # fmt: skip
        for (process, batch), at in began.items():
            if process == loop.generation and loop.alive():
                continue  # in flight
            killed_at = loop.killed.get(process)
            message = (
                "the loop process was SIGKILLed mid-batch by the soak"
                if killed_at is not None
                else f"the loop process exited mid-batch; see {loop.log_dir}/loop-{process}.log"
            )
            runs.append(BatchRun(f"loop-{process}#{batch}", at, killed_at, False, message, True,
                                 f"loop-{process}"))  # fmt: skip
        return runs

    def summary(self) -> list[str]:
        ends = [e for e in self.loop.snapshot() if e.event == "end"]
        failed = sum(1 for e in ends if not e.fields["success"])
        return [f"micro-batches: {len(ends)} ({failed} failed) in {self.loop.generation} "
                "loop processes"]  # fmt: skip

    def stop(self, timeout: float = 120) -> None:
        self.loop.stop(timeout)


class DagsterPipeline:
    kill_kinds = ("microbatch_kill", "daemon_kill")
    description = (
        "Dagster as `c360 up` runs it (code server, webserver, daemon; the sensor keeps one "
        "microbatch_stream run going in a run worker of its own); microbatch_kill = SIGKILL of "
        "the stream run's worker (the heartbeat's pid) mid-batch, daemon_kill = SIGKILL of the "
        "dagster-daemon"
    )

    def __init__(self, settings: Settings, work: Path):
        from customer360.pipeline.dagster_home import prepare_dagster_home

        self.settings = settings
        self.work = work
        self.home = prepare_dagster_home(settings)
        self.env = settings.environment() | {"DAGSTER_HOME": str(self.home)}
        self.code_server: subprocess.Popen | None = None
        self.workspace: Path | None = None  # naming the code server (start_code_server)
        self.webserver: subprocess.Popen | None = None
        self.daemon: subprocess.Popen | None = None
        self.daemons: list[subprocess.Popen] = []  # every daemon started (their sessions)
        self.worker_kills: list[tuple[str, int, float]] = []  # (stream run, its pid, when)
        self.daemon_kills: list[tuple[float, str | None]] = []  # (when, stream run in flight)
        self.stop_began: float | None = None
        self.stop_lines: list[str] = []
        self.stuck: list[str] = []
        self._instance = None
        self._stream = None
        self._drain_mark: tuple[tuple, int] | None = None
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
        bin_dir = Path(sys.executable).parent
        self.daemon = self._spawn(
            "dagster-daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(self.workspace)]
        )
        self.daemons.append(self.daemon)

    def start(self) -> None:
        from customer360.pipeline.dagster_home import start_code_server
        from customer360.services.processes import free_port

        # Create the instance's storage (SQLite schemas) here first: the webserver, the daemon
        # and this process creating a new DAGSTER_HOME's databases at once race (alembic stamp).
        instance = self.instance
        _ = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        instance.get_runs(limit=1)
        self.code_server, self.workspace = start_code_server(self.env, self.work)
        bin_dir = Path(sys.executable).parent
        self.port = free_port()
        self.webserver = self._spawn(
            "dagster-webserver",
            [str(bin_dir / "dagster-webserver"), "-w", str(self.workspace), "-h", "127.0.0.1",
             "-p", str(self.port)],
        )  # fmt: skip
        self._start_daemon()

    def alive(self) -> bool:
        return self.daemon is not None and self.daemon.poll() is None

    def ensure_running(self) -> None:
        if not self.alive() and self.stop_began is None:
            self._start_daemon()

    @property
    def instance(self):
        if self._instance is None:
            from dagster import DagsterInstance

            self._instance = DagsterInstance.from_config(str(self.home))
            self._stream = None
        return self._instance

    @property
    def stream(self):
        """The stream's runs and logged batches (`customer360/bench/dagster_stream.py`)."""
        from customer360.bench.dagster_stream import StreamLog

        if self._stream is None or self._stream.instance is not self.instance:
            self._stream = StreamLog(self.instance)
        return self._stream

    def batches(self) -> list:
        """Every micro-batch the stream's runs logged so far (landed records, or failed)."""
        return self.stream.refresh()

    def started(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"dagster-daemon exited; see {self.work}/dagster-daemon.log")
        return self.first_success_after(0) is not None

    def _live_stream(self):
        """(beat, run record) of the stream run whose worker beats now, or None."""
        from dagster import DagsterRunStatus

        from customer360.pipeline.heartbeat import read_beat

        beat = read_beat(self.settings)
        if beat is None or beat.why_gone(time.time()) is not None:
            return None
        record = self.instance.get_run_record_by_id(beat.run_id)
        if record is None or record.dagster_run.status != DagsterRunStatus.STARTED:
            return None
        return beat, record

    def median_batch_seconds(self) -> float:
        seconds = [b.seconds for b in self.batches()[-50:]]
        return statistics.median(seconds) if seconds else 2.0

    def _mid_batch(self):
        """(beat, last batch) while the live stream run is working through records: its last
        logged batch landed some and ended moments ago, and batches run back to back, so the
        next one is in flight. None otherwise."""
        live = self._live_stream()
        if live is None:
            return None
        beat, _ = live
        self.batches()
        logged = self.stream.batches_of(beat.run_id)
        if not logged or not logged[-1].records or not logged[-1].succeeded:
            return None
        if time.time() - logged[-1].ended > max(2.0, 2 * self.median_batch_seconds()):
            return None
        return beat, logged[-1]

    def kill(self, kind: str, rng: random.Random) -> tuple[float, float, str, str]:
        """Inject a process kill; returns (at, back_at, detail, the process killed). Raises
        FaultNotInjected when there was nothing to kill."""
        if kind == "microbatch_kill":
            return self._kill_worker(rng)
        if kind == "daemon_kill":
            return self._kill_daemon(rng)
        raise ValueError(f"not a process kill of Dagster mode: {kind}")

    def _kill_worker(self, rng: random.Random) -> tuple[float, float, str, str]:
        """SIGKILL the stream run's worker (the heartbeat's pid) while a batch is in flight.

        Nothing restarts it here: Dagster's code server finds its run worker gone and fails the
        run (or, were the code server gone too, the sensor finds the heartbeat's pid gone and
        marks it failed, tag c360/orphaned); the sensor then starts a new stream run.
        """
        mid, tries = None, 0
        deadline = time.monotonic() + 120
        while mid is None and time.monotonic() < deadline:
            seen = self._mid_batch()
            if seen is None:
                time.sleep(0.2)
                continue
            tries += 1
            time.sleep(rng.uniform(0, min(2.0, self.median_batch_seconds())))
            again = self._mid_batch()
            if again is not None and again[0].pid == seen[0].pid:
                mid = again
        if mid is None:
            live = self._live_stream()
            if live is None:
                raise f.FaultNotInjected("no stream run alive to kill for 120 s")
            # A live run that logged no batch in flight for 120 s (a quiet stream): killed
            # anyway, and its detail says so ("no batch seen in flight").
            mid = (live[0], None)
        beat, last = mid
        at = time.time()
        try:
            os.kill(beat.pid, signal.SIGKILL)
        except ProcessLookupError as gone:
            raise f.FaultNotInjected(
                f"stream run {beat.run_id[:8]}'s worker, pid {beat.pid}, ended before the SIGKILL"
            ) from gone
        # Its parent, the code server, reaps it within a second.
        deadline = time.monotonic() + 30
        while process_alive(beat.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.worker_kills.append((beat.run_id, beat.pid, at))
        if last is None:
            where = "(no batch seen in flight)"
        else:
            where = (
                f"mid-batch (the batch before landed {last.records} records and ended "
                f"{at - last.ended:.1f} s earlier; attempt {tries})"
            )
        detail = f"SIGKILL of stream run {beat.run_id[:8]}'s worker, pid {beat.pid}, {where}"
        return at, time.time(), detail, beat.run_id

    def _kill_daemon(self, rng: random.Random) -> tuple[float, float, str, str]:
        """SIGKILL the dagster-daemon (sensor, run queue, schedules, run monitoring) at a random
        moment while the stream runs, then start a new one; back when it beats again."""
        deadline = time.monotonic() + 60
        while (live := self._live_stream()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(rng.uniform(0, 2.0))
        live = self._live_stream()
        killed = self.daemon
        at = time.time()
        killed.send_signal(signal.SIGKILL)  # the daemon only, as a crash would
        killed.wait()
        self.daemon_kills.append((at, live[0].run_id if live else None))
        self._start_daemon()
        beat_at = self._daemon_beats_after(at, timeout=180)
        in_flight = f"stream run {live[0].run_id[:8]} in flight" if live else "no stream run alive"
        back = (
            f"the new daemon beat after {beat_at - at:.1f} s"
            if beat_at is not None
            else "the new daemon did not beat within 180 s"
        )
        detail = f"SIGKILL of dagster-daemon pid {killed.pid} ({in_flight}); {back}"
        return at, beat_at or time.time(), detail, f"dagster-daemon-{killed.pid}"

    def _daemon_beats_after(self, moment: float, timeout: float) -> float | None:
        """When the daemon's sensor loop first beat after `moment` (Dagster's daemon
        heartbeats), or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            beat = self.instance.get_daemon_heartbeats().get("SENSOR")
            if beat is not None and beat.timestamp > moment:
                return beat.timestamp
            time.sleep(0.5)
        return None

    def first_success_after(self, moment: float) -> float | None:
        """When the first successful logged batch that began after `moment` ended."""
        ends = [b.ended for b in self.batches() if b.succeeded and b.began > moment]
        return min(ends) if ends else None

    def drained(self, stopped_at: float) -> bool:
        """The live stream run did three batches in a row, begun after the stream stopped, that
        logged nothing (landed nothing, failed nothing), and the sensor's lag probe finds nothing
        to land or build.

        The heartbeat counts every batch; only those that landed records or failed are logged.
        A mark is taken from a beat written after the stream stopped: of the batches done since,
        the first began no earlier than that beat, and once three are done the first two have
        been logged if they were ever going to be.
        """
        from customer360.pipeline.probe import probe_lag

        live = self._live_stream()
        if live is None:
            self._drain_mark = None
            return False
        beat, _ = live
        batches = self.batches()
        key = (beat.run_id, batches[-1].ended if batches else None)
        if beat.at <= stopped_at + 1:
            return False
        if self._drain_mark is None or self._drain_mark[0] != key:
            self._drain_mark = (key, beat.batches)
            return False
        if beat.batches < self._drain_mark[1] + 3:
            return False
        if probe_lag(self.settings).anything_to_do:
            self._drain_mark = None
            return False
        return True

    def batch_runs(self) -> list[BatchRun]:
        """Every finished Dagster run (of any job), every batch the stream's runs logged and
        every run of the data tests inside them, with why each failed one failed (storage of
        the soak's own DAGSTER_HOME, read through the public DagsterInstance API)."""
        from dagster import RunsFilter

        from customer360.chaos.runs import dagster_run_succeeded
        from dagster_project.sensors import ORPHANED_TAG
        from dagster_project.stream import STREAM_JOB

        runs = []
        for record in self.instance.get_run_records(RunsFilter()):
            run = record.dagster_run
            if not run.is_finished:
                continue  # still queued or in progress: `stuck` reports it
            began = record.start_time or record.create_timestamp.timestamp()
            ended = record.end_time or record.update_timestamp.timestamp()
            created = record.create_timestamp.timestamp()
            succeeded = dagster_run_succeeded(
                run.status.value, ended, self.stop_began, created, record.start_time
            )
            message = "" if succeeded else run_failure_message(self.instance, run.run_id)
            orphaned = ORPHANED_TAG in run.tags or killed_by_signal(self.instance, run.run_id)
            process = run.run_id if run.job_name == STREAM_JOB else ""
            if not succeeded and run.status.value == "CANCELED":
                message = f"canceled during the soak: {message}"
            runs.append(BatchRun(run.run_id, began, ended, succeeded, message, orphaned, process))
        for batch in self.batches():
            runs.append(
                BatchRun(f"{batch.run_id[:8]}#{batch.number}", batch.began, batch.ended,
                         batch.succeeded, "; ".join(batch.failures), process=batch.run_id)
            )  # fmt: skip
        for tests in self.stream.data_tests():
            message = f"data tests: {tests.passed}/{tests.run} passed; " + "; ".join(tests.failures)
            runs.append(
                BatchRun(f"{tests.run_id[:8]} data tests #{tests.number}", tests.began,
                         tests.ended, tests.succeeded, message, process=tests.run_id)
            )  # fmt: skip
        return runs

    def summary(self) -> list[str]:
        from dagster import RunsFilter

        from dagster_project.sensors import ORPHANED_TAG
        from dagster_project.stream import STREAM_JOB

        by_job: dict[str, dict[str, int]] = {}
        records = self.instance.get_run_records(RunsFilter())
        for record in records:
            counts = by_job.setdefault(record.dagster_run.job_name, {})
            status = record.dagster_run.status.value
            counts[status] = counts.get(status, 0) + 1
        lines = [
            "dagster runs: "
            + "; ".join(
                f"{job} " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
                for job, counts in sorted(by_job.items())
            )
            + f"; {len(self.daemons)} daemon processes"
        ]
        stream_runs = {r.dagster_run.run_id: r for r in records
                       if r.dagster_run.job_name == STREAM_JOB}  # fmt: skip
        ended_by_kill = []
        for run_id, _, _ in self.worker_kills:
            record = stream_runs.get(run_id)
            status = record.dagster_run.status.value if record else "missing"
            how = ("the sensor (c360/orphaned)" if record and ORPHANED_TAG in
                   record.dagster_run.tags else "Dagster's code server")  # fmt: skip
            ended_by_kill.append(f"{run_id[:8]} {status} (marked by {how})")
        lines.append(
            f"micro-batch process kills: {len(self.worker_kills)}; their stream runs: "
            + (", ".join(ended_by_kill) or "none")
        )
        outlived = []
        for at, run_id in self.daemon_kills:
            record = stream_runs.get(run_id) if run_id else None
            if record is None:
                continue
            end = record.end_time
            killed = any(r == run_id for r, _, _ in self.worker_kills)
            later = f"ended {end - at:.0f} s later" if end else "still running"
            outlived.append(
                f"{run_id[:8]} {record.dagster_run.status.value}, {later}"
                + (" (its worker was killed later)" if killed else "")
            )
        lines.append(
            f"daemon kills: {len(self.daemon_kills)}; the stream run in flight at each: "
            + (", ".join(outlived) or "none")
        )
        batches = self.batches()
        failed = sum(1 for b in batches if not b.succeeded)
        seconds = [b.seconds for b in batches if b.succeeded]
        tests = self.stream.data_tests()
        lines.append(
            f"micro-batches logged by {len(stream_runs)} stream runs: {len(batches)} "
            f"({failed} failed), median {statistics.median(seconds) if seconds else 0:.2f} s; "
            f"data tests run {len(tests)} times ({sum(not t.succeeded for t in tests)} failing)"
        )
        lines += [f"stop: {line}" for line in self.stop_lines]
        return lines

    def stop(self, timeout: float = 60) -> None:
        """Stop as `c360 up` stops on Ctrl-C: terminate the runs in flight through Dagster while
        the code server can still interrupt them (the stream's run ends CANCELED), SIGTERM the
        webserver's, every daemon's and the code server's process group (with the runs it
        launched), then mark canceled what is left in flight. Runs that did
        not end when asked are listed in `stuck`."""
        from customer360.pipeline.dagster_home import (
            cancel_runs_left_in_flight,
            terminate_runs_in_flight,
        )

        first = self.stop_began is None
        if first:
            self.stop_began = time.time()
            try:
                lines = terminate_runs_in_flight(self.instance)
            except Exception as exc:  # noqa: BLE001 - reported; the processes are stopped anyway
                lines = [f"terminating the runs in flight failed: {type(exc).__name__}: {exc}"]
            self.stop_lines += lines
            self.stuck += [line for line in lines if "did not end" in line or "failed" in line]
        stop_process_groups(
            [p for p in (self.webserver, *self.daemons, self.code_server) if p is not None], timeout
        )
        if first:
            left = cancel_runs_left_in_flight(self.instance)
            self.stop_lines += left
            self.stuck += left
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None


def killed_by_signal(instance, run_id: str) -> bool:
    """Whether Dagster's code server found the run's worker process killed by a signal (its
    engine event "[DagsterApiServer] Run execution process for <run> was terminated by signal
    9 (SIGKILL). ...", after which it fails the run)."""
    from dagster import DagsterEventType

    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records
    prefix = f"Run execution process for {run_id} was terminated by signal"
    for record in records:
        entry = record.event_log_entry
        text = (entry.dagster_event.message if entry.dagster_event else None) or entry.message
        if prefix in (text or ""):
            return True
    return False


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
