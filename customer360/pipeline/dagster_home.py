"""The Dagster instance under C360_HOME: DAGSTER_HOME, its dagster.yaml, and the processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from customer360.config import Settings
from customer360.services.processes import stop_process_groups

REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "dagster.yaml"
WORKSPACE_YAML = REPO / "workspace.yaml"


def dagster_home(settings: Settings) -> Path:
    return settings.home / "dagster"


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
    bin_dir = Path(sys.executable).parent
    log_dir = log_dir or settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if not (Path(env["DAGSTER_HOME"]) / "history" / "runs.db").exists():
        # Two processes creating a new instance's SQLite tables at once can fail ("table
        # secondary_indexes already exists"), leaving the webserver broken: create them first.
        with open(log_dir / "dagster-instance-migrate.log", "ab") as log:
            subprocess.run(
                [str(bin_dir / "dagster"), "instance", "migrate"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
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


def cancel_runs_in_flight(settings: Settings) -> list[str]:
    """Mark canceled the runs the stopped daemon was executing, so that the UI and the next
    start do not find them STARTED forever. Call only once the daemon is gone.

    Nothing they wrote is half-done: a micro-batch commits the rows it lands together with the
    source positions, a dbt model in one transaction, and the serving copy by an atomic rename,
    so the next micro-batch resumes from what was committed.
    """
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    in_flight = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    lines = []
    with DagsterInstance.from_config(str(dagster_home(settings))) as instance:
        for run in instance.get_runs(RunsFilter(statuses=in_flight)):
            instance.report_run_canceled(run, message="c360 stopped Dagster during this run")
            lines.append(f"canceled run {run.run_id[:8]} ({run.job_name}), which was in flight")
    return lines
