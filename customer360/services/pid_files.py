"""The pid files of the processes c360 starts: which process a file names, if it still runs.

A pid file holds the pid and the process's identity (`process_identity`): after a reboot, or a
restart of the container, the pid in a file left behind may be another process's, which must
be neither waited for as if it were the server nor signalled by `c360 services down`. A file
without an identity (written before c360 kept one) is taken at its pid.
"""

from __future__ import annotations

import os
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def write_pid_file(path: Path, pid: int) -> None:
    path.write_text(f"{pid} {process_identity(pid) or ''}".strip())


def running_pid(path: Path) -> int | None:
    """The pid `path` names when that process still runs, else None (and the stale file is
    removed)."""
    written = _read(path)
    if written is None:
        return None
    pid, identity = written
    if process_alive(pid) and not process_replaced(pid, identity or None):
        return pid
    path.unlink(missing_ok=True)
    return None


def names_process(path: Path, pid: int) -> bool:
    """Whether `path` is a pid file c360 wrote for the running process `pid` (its identity
    included, so no other program's pid file matches). Only reads."""
    written = _read(path)
    return written is not None and written[0] == pid and written[1] == process_identity(pid)


def _read(path: Path) -> tuple[int, str] | None:
    """(pid, identity: "" when the file has none), or None when there is no such file."""
    try:
        pid_text, _, identity = path.read_text().strip().partition(" ")
        return int(pid_text), identity
    except (OSError, ValueError):
        return None


def process_identity(pid: int) -> str | None:
    """What tells process `pid` from a later one given the same pid: the boot it runs in and its
    start time (Linux /proc: boot_id, and the clock ticks since boot of /proc/<pid>/stat's 22nd
    field); None where that cannot be read."""
    fields = _stat_fields(pid)
    try:
        return None if fields is None else f"{BOOT_ID.read_text().strip()}/{fields[19]}"
    except (OSError, IndexError):
        return None


def process_replaced(pid: int, identity: str | None) -> bool:
    """Whether the live process `pid` is another one than the one whose identity was recorded
    (`identity`, None when unknown: then it is taken for the same one, as it is when the current
    identity cannot be read)."""
    current = process_identity(pid)
    return identity is not None and current is not None and current != identity


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists and is not a zombie (a zombie child of ours is reaped).

    A process whose first thread has exited while others still run (a JVM stopping: Kafka) shows
    that thread as a zombie, but is alive: its other threads still hold its sockets and files
    (Kafka's port, which a restart then found taken)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    if not fields:
        return False
    if fields[0] == "Z":
        if _threads(pid) > 1:
            return True
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _threads(pid: int) -> int:
    """The threads of process `pid` that have not exited (0 when it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None when it
    cannot be read (the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
