"""Micro-batches back to back, in a process of their own.

What `c360 bench --mode loop` (customer360/bench/loop.py) and the chaos soak
(customer360/chaos/loop.py) run, each reporting the batches its own way; the stream run of
`c360 up` is the same loop inside Dagster (dagster_project/stream.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from customer360.pipeline.microbatch import MicroBatch, MicroBatchResult


@dataclass
class LoopedBatch:
    """One micro-batch of the loop: its result, or the error it raised."""

    number: int
    started_at: float  # time.time()
    ended_at: float
    result: MicroBatchResult | None
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started_at

    @property
    def did_something(self) -> bool:
        return self.result is not None and (self.result.records > 0 or self.result.dbt is not None)


def micro_batches(
    batch: MicroBatch,
    stop: threading.Event,
    idle_pause_s: float,
    on_begin: Callable[[int], None] | None = None,
) -> Iterator[LoopedBatch]:
    """Run `batch.run()` until `stop` is set, yielding each batch once it ended. A batch that
    raises is yielded with its error and the next one tries again; after a batch that did
    nothing or failed, the loop waits `idle_pause_s` (or until `stop`)."""
    number = 0
    while not stop.is_set():
        number += 1
        if on_begin is not None:
            on_begin(number)
        started = time.time()
        try:
            result, error = batch.run(), None
        except Exception as exc:  # noqa: BLE001 - reported with the batch; the next one retries
            result, error = None, f"{type(exc).__name__}: {exc}"
        looped = LoopedBatch(number, started, time.time(), result, error)
        yield looped
        if not looped.did_something or not result.success:
            stop.wait(idle_pause_s)
