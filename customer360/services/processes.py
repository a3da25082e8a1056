"""Start, find and stop background server processes by pid file.

Only processes whose pid file we wrote are ever signalled, so `down` never touches a server
somebody else started on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from customer360.services.pid_files import process_alive, running_pid, write_pid_file
from customer360.services.port_holders import port_holder


class ServiceError(RuntimeError):
    """A local service could not be started or stopped; the message says what to do."""


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a process's log ("" when it has none), to show why it stopped."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None: the pid file is removed when its process is
        gone, or when its pid is another process's now (after a reboot; pid_files.py)."""
        return running_pid(self.pid_file)

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                # Its own session: Ctrl-C in the terminal that ran `up` does not kill it.
                start_new_session=True,
            )
        write_pid_file(self.pid_file, proc.pid)
        return proc.pid

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`. Returns whether a process was running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_alive(pid):
            _signal(pid, signal.SIGKILL)
            while process_alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL without a chance to clean up (for crash tests)."""
        pid = self.pid()
        if pid is None:
            return False
        _signal(pid, signal.SIGKILL)
        while process_alive(pid):
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_file, lines)


class LocalServer:
    """A server c360 runs itself (Kafka, MongoDB): its process, start-up guard and readiness.

    A subclass sets `process`, `host`, `name` (as it reads mid-sentence) and `start_timeout_s`,
    and answers `ready()` and `not_ready_message()`.
    """

    name = "the server"
    process: ManagedProcess
    host: str
    start_timeout_s = 60.0
    ready_interval_s = 0.3

    def ready(self) -> bool:
        raise NotImplementedError

    def not_ready_message(self) -> str:
        """What to say when it did not answer within `start_timeout_s`."""
        raise NotImplementedError

    def running_pid(self) -> int | None:
        return self.process.pid()

    def already_running(self) -> bool:
        """Whether ours runs already (then waits until it answers)."""
        if self.process.pid() is None:
            return False
        self.wait_ready()
        return True

    def refuse_ports_in_use(self, ports: tuple[int, ...], advice: str) -> None:
        """Fail clearly when another process listens where this server must."""
        for port in ports:
            if port_in_use(self.host, port):
                raise ServiceError(
                    f"Port {self.host}:{port} is in use by a process this c360 home did not "
                    f"start{_holder_text(port)}, so {self.name} cannot listen there. {advice}"
                )

    def wait_ready(self) -> None:
        def ready_or_dead():
            if self.process.pid() is None:
                name = self.name[0].upper() + self.name[1:]
                raise ServiceError(
                    f"{name} exited during start-up. Its log ends with:\n" + self.process.log_tail()
                )
            return self.ready()

        if not wait_until(ready_or_dead, self.start_timeout_s, interval=self.ready_interval_s):
            raise ServiceError(
                f"{self.not_ready_message()} Log: {self.process.log_file}\n"
                + self.process.log_tail()
            )

    def stop(self) -> bool:
        return self.process.stop(timeout=30)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def port_in_use(host: str, port: int) -> bool:
    """Whether a server listens on `port`: a connection to it is accepted."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, port)) != 0:
            return False
        # A free port of the ephemeral range (free_port's) can be the one the kernel picks for
        # this very connection, which then connects to itself (TCP's simultaneous open): no
        # server listens.
        return sock.getsockname() != sock.getpeername()


def refuse_port_in_use(host: str, port: int, what: str, advice: str) -> None:
    """Fail before starting `what` when another process listens where it must: a server whose
    port is taken exits at once, into a log, while the address printed shows the other one."""
    if port_in_use(host, port):
        raise ServiceError(
            f"Port {host}:{port} is in use by another process{_holder_text(port)}, so {what} "
            f"cannot listen there. {advice}"
        )


def _holder_text(port: int) -> str:
    """The holder of `port` as an error names it, `" (pid N: its command ...)"`, or "" when it
    cannot be told."""
    holder = port_holder(port)
    return "" if holder is None else f" ({holder.description()})"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_kafka_port() -> int:
    """A free port P whose P + 1 is free too: Kafka listens on P and its controller on P + 1
    (kafka.py), and a free port's neighbour is often taken by another connection."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except (OSError, OverflowError):  # taken, or past the last port
                continue
        return port


def wait_until(check, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def stop_process_groups(processes: list[subprocess.Popen], timeout: float = 20.0) -> None:
    """Stop processes started in sessions of their own (`start_new_session=True`): SIGTERM each
    one's process group (it and its children), wait up to `timeout` for them all, then SIGKILL
    what is left of each group (a leader that ignored SIGTERM, or children it left behind)."""

    def signal_group(process: subprocess.Popen, signum: int) -> None:
        try:
            os.killpg(process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass  # the whole group is gone

    for process in processes:
        signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in processes:
        signal_group(process, signal.SIGKILL)
        if process.poll() is None:
            process.wait(10)
