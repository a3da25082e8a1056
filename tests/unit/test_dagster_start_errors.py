"""A Dagster that cannot start says why in one message, with the end of the log that says it."""

from __future__ import annotations

import socket
import subprocess

import pytest

from customer360.config import Settings
from customer360.pipeline import cli as pipeline_cli
from customer360.pipeline import dagster_home
from customer360.services.processes import ServiceError


def test_a_failed_instance_migrate_is_a_service_error_with_its_output(tmp_path, monkeypatch):
    # It was a CalledProcessError traceback naming the command only.
    def failing_migrate(command, stdout, **_):
        stdout.write(b"sqlite3.OperationalError: disk I/O error\n")
        return subprocess.CompletedProcess(command, 3)

    monkeypatch.setattr(dagster_home.subprocess, "run", failing_migrate)
    settings = Settings(home=tmp_path / "home", warehouse=tmp_path / "w.duckdb")
    with pytest.raises(ServiceError) as failed:
        dagster_home.start_dagster(settings, port=1)
    message = str(failed.value)
    assert message.startswith("`dagster instance migrate` failed (exit 3)")
    assert message.endswith(
        "dagster-instance-migrate.log:\nsqlite3.OperationalError: disk I/O error"
    )


def test_c360_dagster_reports_it_in_one_line_and_starts_nothing(tmp_path, monkeypatch, capsys):
    def refused(*_, **__):
        raise ServiceError("`dagster instance migrate` failed (exit 3)")

    monkeypatch.setattr(dagster_home, "start_dagster", refused)
    monkeypatch.setattr(pipeline_cli, "refuse_port_in_use", lambda *_: None)
    settings = Settings(home=tmp_path / "home", warehouse=tmp_path / "w.duckdb")
    args = pipeline_cli.argparse.Namespace(port=1, host="127.0.0.1")
    assert pipeline_cli._dagster(args, settings) == 1
    assert capsys.readouterr().err == "c360 dagster: `dagster instance migrate` failed (exit 3)\n"


def test_a_code_server_that_cannot_start_says_why(tmp_path, monkeypatch):
    # Started before the webserver and daemon (dagster_home.start_code_server): one that exits
    # (here, its port taken by another process) stops the start with the end of its log.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        monkeypatch.setattr(dagster_home, "free_port", lambda: taken.getsockname()[1])
        env = Settings(home=tmp_path / "home", warehouse=tmp_path / "w.duckdb").environment()
        env["DAGSTER_HOME"] = str(tmp_path / "dagster")
        (tmp_path / "dagster").mkdir()
        with pytest.raises(ServiceError) as failed:
            dagster_home.start_code_server(env, tmp_path)
    message = str(failed.value)
    assert message.startswith("Dagster's code server exited (code "), message
    assert "dagster-code-server.log:\n" in message and "(empty)" not in message, message
    assert not (tmp_path / "dagster" / "workspace.yaml").exists()
