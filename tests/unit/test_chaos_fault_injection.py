"""A fault that could not happen (no stream run alive to kill) is not counted as injected: it
is tried again later in the soak, and the soak fails, saying why, when a planned kind never
happened. No services: the pipeline and the clock are stand-ins."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from customer360.chaos import faults as f
from customer360.chaos import pipelines
from customer360.chaos.soak import (
    RETRY_AFTER_S,
    ChaosConfig,
    ChaosReport,
    FaultRecord,
    inject_on_schedule,
)


class FakeClock:
    """time.time / time.monotonic / time.sleep: a second passes at each reading."""

    def __init__(self, now: float = 1_000.0):
        self.now = now

    def time(self) -> float:
        self.now += 1.0
        return self.now

    monotonic = time

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_worker_kill_with_no_stream_run_alive_is_not_injected(monkeypatch):
    monkeypatch.setattr(pipelines, "time", FakeClock())
    pipeline = pipelines.DagsterPipeline.__new__(pipelines.DagsterPipeline)
    pipeline._mid_batch = lambda: None
    pipeline._live_stream = lambda: None  # the stream run is down
    pipeline.worker_kills = []
    with pytest.raises(f.FaultNotInjected, match="no stream run alive"):
        pipeline.kill("microbatch_kill", random.Random(1))
    assert pipeline.worker_kills == []


def test_a_worker_kill_whose_process_is_already_gone_is_not_injected(monkeypatch):
    monkeypatch.setattr(pipelines, "time", FakeClock())
    beat = SimpleNamespace(pid=2**22 + 12345, run_id="stream-run-a")  # no such process
    pipeline = pipelines.DagsterPipeline.__new__(pipelines.DagsterPipeline)
    pipeline._mid_batch = lambda: None
    pipeline._live_stream = lambda: (beat, None)
    pipeline.worker_kills = []
    monkeypatch.setattr(pipelines.os, "kill", _no_such_process)
    with pytest.raises(f.FaultNotInjected, match="ended before the SIGKILL"):
        pipeline.kill("microbatch_kill", random.Random(1))
    assert pipeline.worker_kills == []


def _no_such_process(pid, sig):
    raise ProcessLookupError(pid)


def recovered(kind: str, at: float) -> FaultRecord:
    record = FaultRecord(kind, at, at + 1, "done")
    record.recovered_at = at + 5
    return record


def test_a_fault_not_injected_is_tried_again_and_counted_once_it_happens():
    clock = FakeClock(now=0.0)
    report = ChaosReport(ChaosConfig(mode="dagster", duration_s=600))
    attempts = []

    def inject(kind):
        attempts.append((kind, clock.now))
        if kind == "microbatch_kill" and len(attempts) < 3:
            raise f.FaultNotInjected("no stream run alive to kill for 120 s")
        return recovered(kind, clock.now)

    schedule = [(100.0, "microbatch_kill"), (200.0, "kafka_restart")]
    inject_on_schedule(schedule, inject, report, 0.0, 600.0, lambda line: None, clock=clock)
    assert [x.kind for x in report.faults] == ["microbatch_kill", "kafka_restart"]
    assert [x.kind for x in report.not_injected] == ["microbatch_kill", "microbatch_kill"]
    kill_times = [at for kind, at in attempts if kind == "microbatch_kill"]
    assert kill_times[1] - kill_times[0] >= RETRY_AFTER_S
    assert report.never_injected == [] and report.ok, report.lines()
    text = "\n".join(report.lines())
    assert "faults injected: microbatch_kill 1, daemon_kill 0, kafka_restart 1" in text
    assert "not injected at" in text and "no stream run alive" in text


def test_the_soak_fails_saying_why_when_a_planned_kill_never_happened():
    clock = FakeClock(now=0.0)
    report = ChaosReport(ChaosConfig(mode="dagster", duration_s=600))

    def inject(kind):
        if kind == "microbatch_kill":
            raise f.FaultNotInjected("no stream run alive to kill for 120 s")
        return recovered(kind, clock.now)

    schedule = [(100.0, "microbatch_kill"), (150.0, "daemon_kill")]
    inject_on_schedule(schedule, inject, report, 0.0, 600.0, lambda line: None, clock=clock)
    # tried until the last retry moment (95 % of the run), never again after it
    assert len(report.not_injected) > 1
    assert max(x.at for x in report.not_injected) <= 0.95 * 600 + 2
    assert report.never_injected == ["microbatch_kill"]
    assert not report.ok
    text = "\n".join(report.lines())
    assert "faults injected: microbatch_kill 0, daemon_kill 1" in text
    assert "NEVER INJECTED: microbatch_kill (1 planned" in text
    assert report.result()["never_injected"] == ["microbatch_kill"]
