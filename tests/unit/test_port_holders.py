"""A port held by another process: the error names it, and says how to stop it when another c360
home started it.

`make demo` leaves its MongoDB and Kafka running; `make demo` in a second checkout then stopped
with "Port 127.0.0.1:27017 is in use by a process c360 did not start", and the user had to find
which process that was and which checkout it belonged to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from customer360.config import Settings
from customer360.services import ServiceError
from customer360.services.mongo import MongoService
from customer360.services.pid_files import write_pid_file
from customer360.services.port_holders import port_holder
from customer360.services.processes import free_port

# A server: listens on the port it is given, says so and waits; its other arguments are ignored
# (they stand for a server's command line).
LISTENER = """\
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture
def listener(tmp_path_factory):
    script = tmp_path_factory.mktemp("bin") / "server.py"
    script.write_text(LISTENER)
    started = []

    def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, int]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(script), str(port), *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc.pid, port

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def _home_with(home: Path, service: str, pid: int) -> Path:
    (home / "run").mkdir(parents=True)
    write_pid_file(home / "run" / f"{service}.pid", pid)
    return home


def test_a_process_of_another_home_is_named_with_the_command_that_stops_it(tmp_path, listener):
    # The first checkout's MongoDB, started from its directory with the default home (.c360).
    first_checkout = tmp_path / "first"
    first_checkout.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "C360_HOME"}
    pid, port = listener("--port", "27017", cwd=first_checkout, env=env)
    home = _home_with(first_checkout / ".c360", "mongo", pid)

    holder = port_holder(port)

    assert (holder.pid, holder.home, holder.service) == (pid, home, "mongo")
    assert holder.command == f"{sys.executable} {holder.command.split()[1]} {port} --port 27017"
    assert holder.description().endswith(
        f"; the 'mongo' of the c360 home {home}, which `C360_HOME={home} c360 services down` stops"
    )


def test_the_home_is_found_from_a_relative_c360_home_or_a_path_in_the_command(tmp_path, listener):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, C360_HOME="my-home")
    pid, port = listener(cwd=elsewhere, env=env)
    home = _home_with(elsewhere / "my-home", "kafka", pid)
    assert (port_holder(port).home, port_holder(port).service) == (home, "kafka")

    # Neither its environment nor its directory: Kafka's configuration under the home.
    other = tmp_path / "other-home"
    env = {k: v for k, v in os.environ.items() if k != "C360_HOME"}
    pid, port = listener("-c", f"{other}/kafka/server.properties", cwd=elsewhere, env=env)
    _home_with(other, "kafka", pid)
    assert port_holder(port).home == other


def test_a_process_of_no_c360_home_is_named_by_its_pid_and_command(tmp_path, listener):
    pid, port = listener("--some", "server", cwd=tmp_path)
    holder = port_holder(port)
    assert (holder.pid, holder.home, holder.service) == (pid, None, None)
    assert holder.command.endswith(f"{port} --some server")
    assert holder.description() == f"pid {pid}: {holder.command}"


def test_nobody_listening_is_none():
    assert port_holder(free_port()) is None


@pytest.mark.services  # MongoService.start, which refuses the port before starting anything
def test_mongo_of_a_second_checkout_names_the_first_ones_server(tmp_path, listener):
    first_checkout = tmp_path / "first"
    first_checkout.mkdir()
    pid, port = listener(cwd=first_checkout)
    first_home = _home_with(first_checkout / ".c360", "mongo", pid)
    second = Settings(home=tmp_path / "second" / ".c360", mongo_uri=f"mongodb://127.0.0.1:{port}")

    with pytest.raises(ServiceError) as refused:
        MongoService(second).start()

    assert str(refused.value) == (
        f"Port 127.0.0.1:{port} is in use by a process this c360 home did not start (pid {pid}: "
        f"{port_holder(port).command}; the 'mongo' of the c360 home {first_home}, which "
        f"`C360_HOME={first_home} c360 services down` stops), so the local MongoDB server cannot "
        "listen there. Stop it, or point C360_MONGO_URI at a free port."
    )


def test_another_programs_pid_file_is_no_c360_home_and_is_left_alone(tmp_path, listener):
    # A daemon with its pid file under <dir>/run, as the system's own /run: the pid alone, no
    # identity as c360 writes; nor is a stale pid file there removed by looking.
    run = tmp_path / "system" / "run"
    pid, port = listener("--pidfile", f"{run}/daemon.pid", cwd=tmp_path)
    run.mkdir(parents=True)
    (run / "daemon.pid").write_text(str(pid))
    (run / "stale.pid").write_text("999999999")

    holder = port_holder(port)

    assert (holder.pid, holder.home) == (pid, None)
    assert sorted(p.name for p in run.iterdir()) == ["daemon.pid", "stale.pid"]
