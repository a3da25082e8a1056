"""`c360 up` and `c360 dagster` refuse a port another process holds before they start anything.

A server whose port was taken exited at once into its log, while `c360 up` went on seeding and
printed the dashboard's address, where the other process answered."""

from __future__ import annotations

import os
import socket

import pytest

from customer360 import demo
from customer360.cli import build_parser
from customer360.config import Settings
from customer360.services import ServiceError
from customer360.services.port_holders import port_holder
from customer360.services.processes import ManagedProcess, free_port


@pytest.fixture
def taken_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def held_by_this_test(port: int) -> str:
    """How the message names the holder of `port`: this test's process, by pid and command."""
    holder = port_holder(port)
    assert (holder.pid, holder.home) == (os.getpid(), None)
    return f" (pid {os.getpid()}: {holder.command})"


def _never(settings):
    pytest.fail("the services were started")


@pytest.mark.parametrize(
    ("taken", "what", "advice"),
    [
        ("serve", "the dashboard", "C360_SERVE_PORT"),
        ("sql", "the SQL endpoint", "C360_SQL_PORT"),
        ("ui", "Dagster's UI", "--ui-port"),
    ],
)
def test_up_names_the_taken_port_and_what_to_set_before_starting_anything(
    tmp_path, monkeypatch, capsys, taken_port, taken, what, advice
):
    monkeypatch.setattr(demo, "services_up", _never)
    ports = {name: free_port() for name in ("serve", "sql", "ui")} | {taken: taken_port}
    settings = Settings(home=tmp_path, serve_port=ports["serve"], sql_port=ports["sql"])
    args = build_parser().parse_args(["up", "--ui-port", str(ports["ui"])])
    assert args.func(args, settings) == 1
    assert capsys.readouterr().err == (
        f"c360 up: Port 127.0.0.1:{taken_port} is in use by another process"
        f"{held_by_this_test(taken_port)}, so {what} cannot listen there. Stop it, or set "
        f"{advice} to a free port.\n"
    )


def test_up_reuses_the_dashboard_a_previous_up_left_running(tmp_path, monkeypatch, taken_port):
    serve = ManagedProcess("serve", tmp_path / "run")
    serve.run_dir.mkdir(parents=True)
    serve.pid_file.write_text(str(os.getpid()))  # ours, alive: the one holding the port

    def services_refused(settings):
        raise ServiceError("no services in a unit test")

    monkeypatch.setattr(demo, "services_up", services_refused)
    settings = Settings(home=tmp_path, serve_port=taken_port, sql_port=free_port())
    args = build_parser().parse_args(["up", "--ui-port", str(free_port())])
    assert args.func(args, settings) == 1  # past the ports, stopped at the services


def test_dagster_names_its_taken_port(tmp_path, capsys, taken_port):
    args = build_parser().parse_args(["dagster", "--port", str(taken_port)])
    assert args.func(args, Settings(home=tmp_path)) == 1
    assert capsys.readouterr().err == (
        f"c360 dagster: Port 127.0.0.1:{taken_port} is in use by another process"
        f"{held_by_this_test(taken_port)}, so Dagster's UI cannot listen there. Stop it, or "
        "pass --port.\n"
    )


def test_serve_alone_names_the_taken_port_and_what_to_set(tmp_path, capsys, taken_port):
    # uvicorn said only "[Errno 98] address already in use", after building the app.
    settings = Settings(home=tmp_path, serve_port=taken_port)
    args = build_parser().parse_args(["serve"])
    assert args.func(args, settings) == 1
    assert capsys.readouterr().err == (
        f"c360 serve: Port 127.0.0.1:{taken_port} is in use by another process"
        f"{held_by_this_test(taken_port)}, so the profile API cannot listen there. Stop it, or "
        "set C360_SERVE_PORT (or --port) to a free port.\n"
    )
