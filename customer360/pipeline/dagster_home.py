"""The Dagster instance under C360_HOME: DAGSTER_HOME, its dagster.yaml, and the processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from customer360.config import Settings
from customer360.services.processes import (
    ServiceError,
    free_port,
    log_tail,
    port_in_use,
    stop_process_groups,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "dagster.yaml"
DEFINITIONS_MODULE = "dagster_project.definitions"
# The name the committed workspace.yaml's entry gets (its module's; that file is for `dagster
# dev`), so that runs, schedules and the UI's history stay with one code location whichever
# way the definitions are served.
CODE_LOCATION = DEFINITIONS_MODULE
# Importing Dagster and the definitions takes ~10-20 s of a busy 2-core machine.
CODE_SERVER_STARTUP_S = 180.0


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


def start_code_server(env: dict[str, str], log_dir: Path) -> tuple[subprocess.Popen, Path]:
    """Start `dagster code-server start` on the definitions, wait until it listens (it has
    loaded them, or failed to: _wait_until_listening), and write a workspace naming it
    (`$DAGSTER_HOME/workspace.yaml`); returns the process (in a session of its own: the runs it
    launches are its children) and the workspace.

    Given workspace.yaml's `python_module` entry, the daemon instead starts a code server of
    its own and replaces it every 60 s (Dagster's RELOAD_WORKSPACE_INTERVAL, not configurable;
    Dagster issue #32677), each one importing Dagster and the definitions again: ~9 s of CPU a
    minute taken from the micro-batches. A code server the workspace names by `grpc_server` is
    asked for its definitions instead, and loads them once."""
    port = free_port()
    log_path = log_dir / "dagster-code-server.log"
    command = [
        str(Path(sys.executable).parent / "dagster"), "code-server", "start",
        "-m", DEFINITIONS_MODULE, "-d", str(REPO), "--location-name", CODE_LOCATION,
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_until_listening(process, port, log_path)
    except BaseException:
        stop_process_groups([process])
        raise
    workspace = Path(env["DAGSTER_HOME"]) / "workspace.yaml"
    workspace.write_text(
        "# Written by c360 (customer360/pipeline/dagster_home.py) for the code server it"
        " started.\n"
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {port}\n"
        f"      location_name: {CODE_LOCATION}\n"
    )
    return process, workspace


def _wait_until_listening(process: subprocess.Popen, port: int, log_path: Path) -> None:
    """The code server's proxy listens once it has loaded the definitions (or failed to: the
    UI then shows the load error, as for any code location)."""

    def listening_or_exited() -> bool:
        if process.poll() is not None:
            raise ServiceError(
                f"Dagster's code server exited (code {process.returncode}) loading "
                f"{DEFINITIONS_MODULE}; the end of {log_path}:\n"
                f"{log_tail(log_path) or '(empty)'}"
            )
        return port_in_use("127.0.0.1", port)

    if not wait_until(listening_or_exited, CODE_SERVER_STARTUP_S, interval=0.25):
        raise ServiceError(
            f"Dagster's code server did not serve {DEFINITIONS_MODULE} within "
            f"{CODE_SERVER_STARTUP_S:.0f} s; the end of {log_path}:\n"
            f"{log_tail(log_path) or '(empty)'}"
        )


def start_dagster(
    settings: Settings, port: int = 3000, host: str = "127.0.0.1", log_dir: Path | None = None
) -> list[subprocess.Popen]:
    """Start Dagster's code server, then dagster-webserver and dagster-daemon on a workspace
    naming it (start_code_server); the caller stops them (stop_dagster)."""
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
    code_server, workspace = start_code_server(env, log_dir)
    commands = {
        "dagster-webserver": [
            str(bin_dir / "dagster-webserver"),
            "-w", str(workspace), "-h", host, "-p", str(port),
        ],
        "dagster-daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)],
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
    except BaseException:  # a stop signal between the starts: leave nothing behind
        stop_process_groups([*processes, code_server])
        raise
    # The code server last: stopped with the others, the runs it launched with it.
    return [*processes, code_server]


def process_name(process: subprocess.Popen) -> str:
    """What start_dagster's processes are called, in messages and their logs' names."""
    if list(process.args[1:3]) == ["code-server", "start"]:
        return "dagster-code-server"
    return Path(process.args[0]).name


def stop_dagster(processes: list[subprocess.Popen], timeout: float = 20.0) -> list[str]:
    """SIGTERM each process (its own session: its children, the runs the code server
    launched, too), then SIGKILL stragglers. Returns a line per process saying how it ended."""
    running = {p.pid for p in processes if p.poll() is None}
    stop_process_groups(processes, timeout)
    return [
        f"stopped {process_name(p)} (pid {p.pid})"
        if p.pid in running
        else f"{process_name(p)} (pid {p.pid}) had already exited with code {p.returncode}"
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
