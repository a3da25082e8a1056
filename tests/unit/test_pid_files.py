"""A pid file left behind by a reboot names its process, not whichever process has its pid now.

`make demo` leaves MongoDB and Kafka running, their pid files under .c360/run. After a reboot
(or a container's restart, where pids are small and handed out in the same order) such a pid
may be another process's: `c360 up` then waited 60 s for a server that was not there, and
`c360 services down` sent SIGTERM to that other process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from customer360.config import Settings
from customer360.services.mongo import MongoService
from customer360.services.pid_files import _stat_fields, process_alive, process_identity
from customer360.services.processes import ManagedProcess, port_in_use


def _foreign_identity(pid: int, other_boot: bool = False) -> str:
    """`pid`'s identity as a process that had its pid before would have had it."""
    boot, ticks = process_identity(pid).split("/")
    if other_boot:
        return f"{'0' * len(boot)}/{ticks}"
    return f"{boot}/{int(ticks) - 1}"


def test_a_started_process_is_found_by_its_pid_file(tmp_path):
    process = ManagedProcess("sleeper", tmp_path / "run")
    pid = process.start([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process.pid_file.read_text() == f"{pid} {process_identity(pid)}"
        assert process.pid() == pid
    finally:
        assert process.stop()
    assert process.pid() is None and not process.pid_file.exists()


def test_a_pid_now_given_to_another_process_is_neither_ours_nor_signalled(tmp_path):
    # Whoever has the pid now: a process that must survive `stop` (this test's own child).
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for other_boot in (False, True):
            process = ManagedProcess("mongo", tmp_path / "run")
            process.run_dir.mkdir(exist_ok=True)
            identity = _foreign_identity(other.pid, other_boot)
            process.pid_file.write_text(f"{other.pid} {identity}")

            assert process.pid() is None
            assert not process.pid_file.exists()  # stale: removed
            process.pid_file.write_text(f"{other.pid} {identity}")
            assert not process.stop() and not process.kill()
            assert other.poll() is None  # not signalled
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()


def test_a_pid_file_without_an_identity_is_taken_at_its_pid(tmp_path):
    # Written by a c360 that kept only the pid: its servers are still found after the upgrade.
    process = ManagedProcess("kafka", tmp_path / "run")
    process.run_dir.mkdir()
    process.pid_file.write_text(str(os.getpid()))
    assert process.pid() == os.getpid()


def test_services_up_after_a_reboot_starts_a_server_instead_of_waiting_for_another_process(
    tmp_path,
):
    settings = Settings(home=tmp_path)
    mongo = MongoService(settings)
    mongo.process.run_dir.mkdir(parents=True)
    mongo.process.pid_file.write_text(f"{os.getpid()} {_foreign_identity(os.getpid())}")
    assert mongo.running_pid() is None
    assert not mongo.already_running()  # before: waited 60 s for a ping, then failed


# A process whose first thread exits while another still runs and listens, as a JVM's does
# while it stops (Kafka): the thread that exits prints the port first.
FIRST_THREAD_EXITS = """
import ctypes, socket, sys, threading
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
threading.Thread(target=sys.stdin.read).start()  # until the test closes stdin
ctypes.CDLL(None).pthread_exit(None)
"""


def test_a_process_whose_first_thread_exited_is_alive_while_another_runs():
    """Its first thread shows as a zombie in /proc, but its other threads hold its port: Kafka
    stopped this way and was started again at once, into its own port (a CI run, 2026-12-07)."""
    child = subprocess.Popen(
        [sys.executable, "-c", FIRST_THREAD_EXITS],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = int(child.stdout.readline())
        while _stat_fields(child.pid)[0] != "Z":  # the first thread has exited
            time.sleep(0.05)
        assert process_alive(child.pid) and port_in_use("127.0.0.1", port)
    finally:
        child.stdin.close()  # the other thread ends, and the process with it
    while process_alive(child.pid):
        time.sleep(0.05)
    assert not port_in_use("127.0.0.1", port)
    child.wait(5)  # reaped (by process_alive) or reapable
