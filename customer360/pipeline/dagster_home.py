"""The Dagster instance under C360_HOME: DAGSTER_HOME, its dagster.yaml, and the processes."""

from __future__ import annotations

import os
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
    return (settings.home / "dagster").resolve()


def prepare_dagster_home(settings: Settings) -> Path:
    """$C360_HOME/dagster with the committed dagster.yaml copied in; returns the directory."""
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DAGSTER_YAML, home / "dagster.yaml")
    return home


def dagster_env(settings: Settings) -> dict[str, str]:
    """The environment for dagster processes: ours, plus DAGSTER_HOME and absolute C360 paths."""
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(prepare_dagster_home(settings)),
        C360_MONGO_URI=settings.mongo_uri,
        C360_MONGO_DB=settings.mongo_db,
        C360_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        C360_KAFKA_TOPIC_PREFIX=settings.kafka_topic_prefix,
        C360_WAREHOUSE=str(settings.warehouse.resolve()),
        C360_HOME=str(settings.home.resolve()),
    )
    return env


def start_dagster(
    settings: Settings, port: int = 3000, host: str = "127.0.0.1", log_dir: Path | None = None
) -> list[subprocess.Popen]:
    """Start dagster-webserver and dagster-daemon on workspace.yaml; the caller stops them."""
    env = dagster_env(settings)
    bin_dir = Path(sys.executable).parent
    log_dir = log_dir or settings.home.resolve() / "logs"
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
    processes = []
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
    return processes


def stop_dagster(processes: list[subprocess.Popen], timeout: float = 20.0) -> None:
    """SIGTERM each process (its own session: its children too), then SIGKILL stragglers."""
    stop_process_groups(processes, timeout)
