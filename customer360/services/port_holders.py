"""Which process listens on a local port, and whether another c360 home started it.

A port c360 needs may be held by the services of another checkout (`make demo` leaves its
MongoDB and Kafka running): the error then names that process and how to stop it, instead of
leaving the user to search for it. Linux's /proc only; elsewhere nothing is found and the error
says what it said before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from customer360.services.pid_files import names_process

PROC = Path("/proc")
LISTEN = "0A"  # a socket's state in /proc/net/tcp: TCP_LISTEN
COMMAND_CHARS = 160


@dataclass(frozen=True)
class PortHolder:
    pid: int
    command: str  # its command line, shortened
    home: Path | None = None  # the c360 home whose run/<service>.pid names it
    service: str | None = None  # that pid file's name: mongo, kafka, serve, ...

    def description(self) -> str:
        """What to tell the user about it, and how to stop it."""
        text = f"pid {self.pid}: {self.command}"
        if self.home is None:
            return text
        text += f"; the '{self.service}' of the c360 home {self.home}"
        if self.service in ("mongo", "kafka"):
            text += f", which `C360_HOME={self.home} c360 services down` stops"
        return text


def port_holder(port: int) -> PortHolder | None:
    """The process listening on TCP `port`, or None when it cannot be told (not Linux, another
    user's process, or nobody listens)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    pid = _pid_with_socket(inodes)
    if pid is None:
        return None
    command = _command(pid)
    for home in _candidate_homes(pid, command):
        service = _service_in_home(home, pid)
        if service is not None:
            return PortHolder(pid, _shortened(command), home, service)
    return PortHolder(pid, _shortened(command))


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            local_port = fields[1].rsplit(":", 1)[-1]
            if int(local_port, 16) == port and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def _pid_with_socket(inodes: set[str]) -> int | None:
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:  # gone, or not ours to read
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    return int(entry.name)
            except OSError:
                continue
    return None


def _command(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def _shortened(command: list[str]) -> str:
    text = " ".join(" ".join(command).split()) or "(command unknown)"
    return text if len(text) <= COMMAND_CHARS else text[: COMMAND_CHARS - 3] + "..."


def _candidate_homes(pid: int, command: list[str]) -> list[Path]:
    """Where its c360 home may be: its C360_HOME, `.c360` in its working directory (the
    default), and the directories above any absolute path in its command line (the MongoDB
    server's storage path and Kafka's configuration are under the home)."""
    try:
        cwd = Path(os.readlink(PROC / str(pid) / "cwd"))
    except OSError:
        cwd = None
    candidates: list[Path] = []
    try:
        environ = (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        environ = []
    for variable in environ:
        if variable.startswith(b"C360_HOME="):
            home = Path(variable.split(b"=", 1)[1].decode(errors="replace"))
            if home.is_absolute() or cwd is not None:
                candidates.append(home if home.is_absolute() else cwd / home)
    if cwd is not None:
        candidates.append(cwd / ".c360")
    for arg in command:
        for part in arg.split("="):
            if part.startswith("/"):
                # Not the root: its /run holds the system's own pid files.
                candidates.extend(parent for parent in Path(part).parents if parent != Path("/"))
    return candidates


def _service_in_home(home: Path, pid: int) -> str | None:
    """The name of the pid file under `home`/run that c360 wrote for the running process `pid`,
    if any."""
    try:
        pid_files = list((home / "run").glob("*.pid"))
    except OSError:
        return None
    for pid_file in pid_files:
        if names_process(pid_file, pid):
            return pid_file.stem
    return None
