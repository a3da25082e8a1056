"""The heartbeat file is written by two threads (the beat thread, and a batch's end): every write
must leave a whole beat in place, and neither thread may be stopped by the other's write."""

from __future__ import annotations

import threading
import time

from customer360.config import Settings
from customer360.pipeline.heartbeat import Heartbeat, read_beat


def test_concurrent_writes_leave_a_whole_beat_and_raise_nothing(tmp_path):
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", home=tmp_path)
    heartbeat = Heartbeat(settings, "run-1")
    heartbeat.path.parent.mkdir(parents=True, exist_ok=True)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def write_many(grow: bool) -> None:
        start.wait()
        for _ in range(300):
            try:
                if grow:  # a longer text than the other threads' at times
                    with heartbeat._lock:
                        heartbeat.beat.records += 10**9
                heartbeat._write()
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
                return
            beat = read_beat(settings)
            if beat is None:
                errors.append(AssertionError("the heartbeat file held no whole beat"))
                return

    threads = [threading.Thread(target=write_many, args=(i % 2 == 0,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    beat = read_beat(settings)
    assert beat is not None and beat.run_id == "run-1"
    assert not list(tmp_path.glob("*.tmp"))


def test_the_beat_thread_goes_on_after_a_failed_write(tmp_path, monkeypatch):
    """A write that fails once (a full disk, a vanished directory) must not end the beats: the
    supervisor would take a live worker for dead."""
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", home=tmp_path)
    monkeypatch.setattr("customer360.pipeline.heartbeat.BEAT_S", 0.01)
    heartbeat = Heartbeat(settings, "run-2")
    real_write = Heartbeat._write
    failures = iter([OSError("No space left on device")])

    def write_failing_once(self):
        if threading.current_thread() is self._thread:
            failure = next(failures, None)
            if failure is not None:
                raise failure
        real_write(self)

    monkeypatch.setattr(Heartbeat, "_write", write_failing_once)
    with heartbeat:
        first = read_beat(settings).at
        deadline = time.monotonic() + 10
        while read_beat(settings).at == first:
            assert time.monotonic() < deadline, "no beat after the failed write"
        assert heartbeat._thread.is_alive()
