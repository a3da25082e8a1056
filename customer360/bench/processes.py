"""Child processes of the benchmark and their peak memory (RSS from /proc, whole process tree)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from customer360.services.processes import stop_process_groups


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing paren.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            kids.append(int(entry.name))
    return kids


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class MemorySampler:
    """Samples the RSS of named process trees every `every_s`; keeps each tree's peak.

    A tree's peak is the greatest sum of its processes' RSS seen at one sample, or its root's
    own high-water mark (VmHWM) if that is greater (a short spike between samples).
    """

    def __init__(self, every_s: float = 0.5):
        self.every_s = every_s
        self.roots: dict[str, int] = {}
        self.peak_kb: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def track(self, name: str, pid: int) -> None:
        self.roots[name] = pid
        self.sample()

    def sample(self) -> None:
        for name, pid in list(self.roots.items()):
            tree = process_tree(pid) if Path(f"/proc/{pid}").exists() else []
            if not tree:
                continue
            total = sum(_status_kb(p, "VmRSS") for p in tree)
            total = max(total, _status_kb(pid, "VmHWM"))
            self.peak_kb[name] = max(self.peak_kb.get(name, 0), total)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self.sample()
        self._stop.set()
        self._thread.join(5)
        return {name: kb / 1024 for name, kb in self.peak_kb.items()}


def self_peak_rss_mb() -> float:
    return _status_kb(os.getpid(), "VmHWM") / 1024


def stop_process(process: subprocess.Popen, timeout: float = 30.0) -> int | None:
    """SIGTERM the process's session (it and its children), SIGKILL if it does not exit."""
    stop_process_groups([process], timeout)
    return process.returncode
