"""Child processes of the benchmark: their peak memory (RSS) and the CPU they used during the load,
from /proc, each over its whole process tree."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from customer360.services.processes import stop_process_groups


class ProcessInfo(NamedTuple):
    parent: int
    cpu_ticks: int  # user + system CPU time so far, in clock ticks


def process_table() -> dict[int, ProcessInfo]:
    """Every process's parent and CPU time, from one pass over /proc. The samplers read several
    trees twice a second while the load runs: a tree walk that scanned /proc again for each of
    its processes took 10.6 ms of CPU for an 8-process tree among 65 processes, 1.5 ms this way,
    and the benchmark's machine runs ~370 processes."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ... utime stime: comm may hold spaces, so split after its
        # closing paren; utime and stime are fields 14 and 15 of stat.
        fields = stat.rsplit(")", 1)[-1].split()
        table[int(entry.name)] = ProcessInfo(int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def process_tree(pid: int, table: dict[int, ProcessInfo] | None = None) -> list[int]:
    """`pid` and its descendants in `table` (default: the processes now); empty if it is gone."""
    table = process_table() if table is None else table
    if pid not in table:
        return []
    children: dict[int, list[int]] = {}
    for child, info in table.items():
        children.setdefault(info.parent, []).append(child)
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
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

    def __init__(self, every_s: float = 0.5, cpu: CpuSampler | None = None):
        self.every_s = every_s
        self.cpu = cpu  # given each sample's process table (one /proc scan serves both)
        self.roots: dict[str, int] = {}
        self.peak_kb: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def track(self, name: str, pid: int) -> None:
        self.roots[name] = pid
        self.sample()

    def sample(self) -> None:
        table = process_table()
        for name, pid in list(self.roots.items()):
            tree = process_tree(pid, table)
            if not tree:
                continue
            total = sum(_status_kb(p, "VmRSS") for p in tree)
            total = max(total, _status_kb(pid, "VmHWM"))
            self.peak_kb[name] = max(self.peak_kb.get(name, 0), total)
        if self.cpu is not None:
            self.cpu.sample(table)

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


class CpuSampler:
    """The CPU each named process tree used over a window, in cores (CPU seconds per second).

    On a machine shared by the pipeline, the sources, the profile API and the benchmark itself,
    a micro-batch's time depends on the CPU left to it: this says who had the cores. Each
    process's CPU time is read when the window opens, at every `sample()` meanwhile (the
    benchmark's MemorySampler passes each of its process tables, every 0.5 s) and when the window
    closes, so a process that starts or ends inside the window counts for what it ran there (what
    it ran after its last sample is missed). `carve_out()` names one process inside a tree on its
    own (the micro-batch stream's run inside Dagster's daemon tree); the benchmark's own process
    counts without its children, which are trees of their own.
    """

    def __init__(self):
        self.roots: dict[str, int] = {}
        self.own_name: str | None = None
        self.carve_outs: Callable[[], dict[int, str]] = dict
        self._first: dict[int, int] = {}
        self._last: dict[int, tuple[str, int]] = {}
        self._opened_at: float | None = None  # None: no window open
        self._lock = threading.Lock()  # sample() comes from the memory sampler's thread

    def track(self, name: str, pid: int) -> None:
        self.roots[name] = pid

    def track_self(self, name: str) -> None:
        self.own_name = name

    def carve_out(self, named_pids: Callable[[], dict[int, str]]) -> None:
        """`named_pids()`, called at every sample, gives processes to count under a name of
        their own wherever they are in the trees."""
        self.carve_outs = named_pids

    def sample(self, table: dict[int, ProcessInfo] | None = None) -> None:
        """Take in the CPU times in `table` (default: /proc now) if the window is open."""
        with self._lock:
            if self._opened_at is not None:
                self._take(process_table() if table is None else table, opening=False)

    def _take(self, table: dict[int, ProcessInfo], opening: bool) -> None:
        owners: dict[int, str] = {}
        for name, root in list(self.roots.items()):
            owners.update((pid, name) for pid in process_tree(root, table))
        if self.own_name is not None:
            owners[os.getpid()] = self.own_name
        owners.update(self.carve_outs())
        for pid, name in owners.items():
            if pid not in table:
                continue
            ticks = table[pid].cpu_ticks
            # A process seen first after the window opened started inside it: all its CPU counts.
            self._first.setdefault(pid, ticks if opening else 0)
            self._last[pid] = (name, ticks)

    def open(self) -> CpuSampler:
        with self._lock:
            self._first.clear()
            self._last.clear()
            self._take(process_table(), opening=True)
            self._opened_at = time.monotonic()
        return self

    def close(self) -> dict[str, float]:
        """Cores each name used on average over the window, the busiest first."""
        with self._lock:
            self._take(process_table(), opening=False)
            seconds = max(time.monotonic() - (self._opened_at or 0.0), 1e-9)
            self._opened_at = None
            per_tick = 1 / os.sysconf("SC_CLK_TCK") / seconds
            used: dict[str, float] = {}
            for pid, (name, ticks) in self._last.items():
                used[name] = used.get(name, 0.0) + (ticks - self._first[pid]) * per_tick
        return dict(sorted(used.items(), key=lambda item: -item[1]))


def self_peak_rss_mb() -> float:
    return _status_kb(os.getpid(), "VmHWM") / 1024


def stop_process(process: subprocess.Popen, timeout: float = 30.0) -> int | None:
    """SIGTERM the process's session (it and its children), SIGKILL if it does not exit."""
    stop_process_groups([process], timeout)
    return process.returncode
