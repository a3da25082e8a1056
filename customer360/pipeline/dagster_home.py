"""The Dagster instance under C360_HOME: DAGSTER_HOME, its dagster.yaml, and the processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from customer360.config import Settings
from customer360.services.processes import ServiceError, log_tail, stop_process_groups

REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "dagster.yaml"
WORKSPACE_YAML = REPO / "workspace.yaml"


def dagster_home(settings: Settings) -> Path:
    return settings.home / "dagster"


def stopping_marker(settings: Settings) -> Path:
    """Present while `c360 up` / `c360 dagster` stop Dagster: the sensor then starts no stream
    (it would start one the moment the stream's run is terminated, and the stopping daemon
    would fail it)."""
    return settings.home / "run" / "dagster.stopping"


def prepare_dagster_home(settings: Settings) -> Path:
    """$C360_HOME/dagster with the committed dagster.yaml copied in; returns the directory."""
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DAGSTER_YAML, home / "dagster.yaml")
    return home


def dagster_env(settings: Settings) -> dict[str, str]:
    """The environment for dagster processes: the settings' C360_* and DAGSTER_HOME."""
    return settings.environment() | {"DAGSTER_HOME": str(prepare_dagster_home(settings))}


def start_dagster(
    settings: Settings, port: int = 3000, host: str = "127.0.0.1", log_dir: Path | None = None
) -> list[subprocess.Popen]:
    """Start dagster-webserver and dagster-daemon on workspace.yaml; the caller stops them."""
    env = dagster_env(settings)
    stopping_marker(settings).unlink(missing_ok=True)
    bin_dir = Path(sys.executable).parent
    log_dir = log_dir or settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if not (Path(env["DAGSTER_HOME"]) / "history" / "runs.db").exists():
        # Two processes creating a new instance's SQLite tables at once can fail ("table
        # secondary_indexes already exists"), leaving the webserver broken: create them first.
        migrate_log = log_dir / "dagster-instance-migrate.log"
        with open(migrate_log, "ab") as log:
            migrated = subprocess.run(
                [str(bin_dir / "dagster"), "instance", "migrate"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if migrated.returncode != 0:
            raise ServiceError(
                f"`dagster instance migrate` failed (exit {migrated.returncode}) creating "
                f"Dagster's storage in {env['DAGSTER_HOME']}; its output, the end of "
                f"{migrate_log}:\n{log_tail(migrate_log) or '(empty)'}"
            )
    commands = {
        "dagster-webserver": [
            str(bin_dir / "dagster-webserver"),
            "-w", str(WORKSPACE_YAML), "-h", host, "-p", str(port),
        ],
        "dagster-daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", str(WORKSPACE_YAML)],
    }  # fmt: skip
    processes: list[subprocess.Popen] = []
    try:
        for name, command in commands.items():
            log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            )
    except BaseException:  # a stop signal between the two starts: leave nothing behind
        stop_process_groups(processes)
        raise
    return processes


def stop_dagster(processes: list[subprocess.Popen], timeout: float = 20.0) -> list[str]:
    """SIGTERM each process (its own session: its children, the code servers, too), then
    SIGKILL stragglers. Returns a line per process saying how it ended."""
    running = {p.pid for p in processes if p.poll() is None}
    stop_process_groups(processes, timeout)
    return [
        f"stopped {Path(p.args[0]).name} (pid {p.pid})"
        if p.pid in running
        else f"{Path(p.args[0]).name} (pid {p.pid}) had already exited with code {p.returncode}"
        for p in processes
    ]


IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def open_instance(settings: Settings):
    """The Dagster instance of these settings (its storage must exist: see start_dagster)."""
    from dagster import DagsterInstance

    instance = DagsterInstance.from_config(str(dagster_home(settings)))
    _ = instance.run_launcher  # created on first use: now, not when stopping
    instance.get_runs(limit=1)
    return instance


def _runs_in_flight(instance) -> list:
    from dagster import DagsterRunStatus, RunsFilter

    return instance.get_runs(RunsFilter(statuses=[DagsterRunStatus(s) for s in IN_FLIGHT]))


def terminate_runs_in_flight(instance, timeout: float = 15.0) -> list[str]:
    """Ask Dagster to terminate every run in flight (the micro-batch stream, a scheduled job)
    and wait up to `timeout` for them to end; call while the daemon still runs. Returns a line
    per run saying how it ended.

    Nothing a run wrote is left half-done: a micro-batch commits the rows it lands together
    with the source positions, a dbt model in one transaction, the serving copy by an atomic
    rename, so the next run resumes from what was committed.

    A run not executing yet (queued, or its worker still starting) is marked canceled: a
    worker that starts on a canceled run does not execute it (Dagster's own path for a run
    force-terminated while it starts). Asked to terminate instead, a starting worker found the
    run CANCELING, took itself for a duplicate, exited, and the run was marked FAILURE (`make
    demo` stopped 7 s after the hourly prune_history run was launched, 2026-12-05).
    """
    from dagster import DagsterRunStatus

    not_executing = (
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
    )
    runs = _runs_in_flight(instance)
    for run in runs:
        if run.status in not_executing:
            instance.report_run_canceled(run, message="c360 stopped Dagster")
        else:
            instance.run_launcher.terminate(run.run_id)
    deadline = time.monotonic() + timeout
    ended: dict[str, str] = {}
    while len(ended) < len(runs) and time.monotonic() < deadline:
        time.sleep(0.2)
        for run in runs:
            current = instance.get_run_by_id(run.run_id)
            if current is None or current.status.value not in IN_FLIGHT:
                ended[run.run_id] = current.status.value if current else "deleted"
    return [
        f"run {run.run_id[:8]} ({run.job_name}) "
        + (f"ended {ended[run.run_id]}" if run.run_id in ended else "did not end in time")
        for run in runs
    ]


def cancel_runs_left_in_flight(instance) -> list[str]:
    """Mark canceled the runs still in flight once the daemon and its run workers are gone (a
    run worker that did not stop in time), so that the UI and the next start do not find them
    STARTED for good."""
    lines = []
    for run in _runs_in_flight(instance):
        instance.report_run_canceled(run, message="c360 stopped Dagster during this run")
        lines.append(f"canceled run {run.run_id[:8]} ({run.job_name}), left in flight")
    return lines
