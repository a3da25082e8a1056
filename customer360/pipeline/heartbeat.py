"""The heartbeat of the process running micro-batches, for whoever supervises it.

A thread of the micro-batch process rewrites a small JSON file next to the warehouse every
`BEAT_S` seconds, whatever the batches are doing (a long first build included): its pid, the
Dagster run it serves, when it started and beat, how many batches it finished and the records
they landed. The supervisor (Dagster's `microbatch_sensor`) reads it without touching the
warehouse: a pid that no longer exists or is another process's now (after a reboot: the beat
holds the process's identity, services/pid_files.py), or a beat older than `STALE_AFTER_S`,
means the process is dead or frozen and its run will never end. `c360 up` prints from it how
the batches go (progress.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from customer360.config import Settings
from customer360.services.pid_files import process_alive, process_identity, process_replaced

log = logging.getLogger(__name__)

BEAT_S = 2.0
STALE_AFTER_S = 60.0


def heartbeat_path(settings: Settings) -> Path:
    return settings.warehouse.with_name(settings.warehouse.name + ".heartbeat.json")


@dataclass
class Beat:
    pid: int
    run_id: str
    at: float  # epoch seconds of the last beat
    batches: int = 0
    last_batch_at: float | None = None
    started_at: float | None = None
    records: int = 0  # landed by its batches
    # The end of the last batch after which the serving copy held all it landed (not one whose
    # publication waited for a backlog to drain).
    served_at: float | None = None
    identity: str | None = None  # process_identity(pid) when it beat (None: unknown)

    def why_gone(self, now: float, stale_after_s: float = STALE_AFTER_S) -> str | None:
        """Why the process that beat is taken for dead, or None while it looks alive."""
        if not process_alive(self.pid):
            return f"its process {self.pid} is gone"
        if process_replaced(self.pid, self.identity):
            return f"its process {self.pid} is gone (the pid is another process's now)"
        if now - self.at > stale_after_s:
            return f"its process {self.pid} has not beaten for {now - self.at:.0f} s"
        return None


def read_beat(settings: Settings) -> Beat | None:
    try:
        return Beat(**json.loads(heartbeat_path(settings).read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


class Heartbeat:
    """`with Heartbeat(settings, run_id) as beat:` beats until the block ends; call
    `beat.batch_done(records, served)` after every micro-batch."""

    def __init__(self, settings: Settings, run_id: str):
        self.path = heartbeat_path(settings)
        now = time.time()
        pid = os.getpid()
        self.beat = Beat(
            pid=pid, run_id=run_id, at=now, started_at=now, identity=process_identity(pid)
        )
        self._stop = threading.Event()
        # Guards the beat, and the file: the beat thread and a batch's end both write it through
        # one temporary name, one at a time, or a rename fails and a write lands in the other's
        # file (half a beat).
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="c360-heartbeat", daemon=True)

    def batch_done(self, records: int = 0, served: bool = False) -> None:
        with self._lock:
            self.beat.batches += 1
            self.beat.records += records
            self.beat.last_batch_at = time.time()
            if served:
                self.beat.served_at = self.beat.last_batch_at
            first = self.beat.batches == 1
        if first:
            # Written now, not at the next beat: a run whose process dies right after its first
            # batch is not taken for one that never finished a batch (the sensor would wait
            # FAILURE_BACKOFF_S before starting the next, as for a crash loop).
            self._write()

    def _write(self) -> None:
        with self._lock:
            self.beat.at = time.time()
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(asdict(self.beat)))
            tmp.replace(self.path)

    def _run(self) -> None:
        while not self._stop.wait(BEAT_S):
            try:
                self._write()
            except OSError as exc:
                # The next beat tries again: a beat thread that ended would have the supervisor
                # take this live process for a frozen one.
                log.warning("the heartbeat could not be written to %s: %s", self.path, exc)

    def __enter__(self) -> Heartbeat:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=BEAT_S * 2)
        self._write()  # the final count, for the sensor's judgement of how the run went
