"""What `c360 dagster` and `c360 up` print of the live pipeline, from its heartbeat.

The Dagster UI shows every batch, but the terminal that started the pipeline showed nothing
after its addresses while the first micro-batch landed and built the whole history (minutes
for a large one): a user could not tell a long first build from a stuck pipeline, nor see that
the stream's process had died and been started again. The heartbeat (heartbeat.py) says what
is needed without touching the warehouse or Dagster's storage.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from customer360.pipeline.heartbeat import Beat
from customer360.pipeline.publishing import CATCH_UP_PUBLISH_EVERY_S

# How often a line says how the batches go (while a backlog drains, and once all is served).
REPORT_EVERY_S = 60.0
# Without a micro-batch process this long after the start, the sensor is likely off: Dagster's
# daemon and code server start in ~10-60 s here, and the sensor starts the stream at its tick.
NO_PROCESS_AFTER_S = 180.0


class PipelineProgress:
    """Call `lines()` every second or so; print what it returns."""

    def __init__(
        self,
        read: Callable[[], Beat | None],
        clock: Callable[[], float] = time.time,
        report_every_s: float = REPORT_EVERY_S,
        no_process_after_s: float = NO_PROCESS_AFTER_S,
    ):
        self._read = read
        self._clock = clock
        self._report_every_s = report_every_s
        self._started = clock()
        self._no_process_by = self._started + no_process_after_s
        self._run_id: str | None = None
        self._gone_said = False
        # What the last line counted: (when, batches, records).
        self._reported: tuple[float, int, int] | None = None
        self._waiting_said = 0.0

    def lines(self) -> list[str]:
        beat, now = self._read(), self._clock()
        gone = None if beat is None else beat.why_gone(now)
        if beat is None or (beat.run_id != self._run_id and gone is not None):
            # None yet, or a process of before this start (or one that died unseen).
            if self._run_id is not None or now < self._no_process_by:
                return []
            self._no_process_by = float("inf")
            return [
                f"pipeline: no micro-batch process after {now - self._started:.0f} s; "
                "microbatch_sensor starts it: is the sensor on in the Dagster UI (Automation)? "
                "Else dagster-daemon.log (process logs, above) says why not"
            ]
        if beat.run_id != self._run_id:
            self._run_id, self._gone_said, self._reported = beat.run_id, False, None
            self._waiting_said = now
            return [
                f"pipeline: micro-batch process {beat.pid} started (Dagster run "
                f"{beat.run_id[:8]}); its first batches land and build all that is new, the "
                "whole history on a first start"
            ]
        if gone is not None:
            if self._gone_said:
                return []
            self._gone_said = True
            return [
                f"pipeline: the micro-batch process is not running ({gone}); the sensor "
                "starts another (the Dagster UI says why it ended)"
            ]
        if self._reported is None:
            return self._until_served(beat, now)
        at, batches, records = self._reported
        if now - at < self._report_every_s:
            return []
        self._reported = (now, beat.batches, beat.records)
        if beat.batches == batches:
            return [f"pipeline: no micro-batch finished in the last {now - at:.0f} s"]
        return [
            f"pipeline: {_batches(beat.batches - batches)} in the last {now - at:.0f} s, "
            f"{beat.records - records:,} records landed; the latest ended "
            f"{now - (beat.last_batch_at or now):.1f} s ago"
        ]

    def _until_served(self, beat: Beat, now: float) -> list[str]:
        """Until the first batch after which the serving copy holds all that was landed."""
        started = beat.started_at or now
        if beat.served_at is None:
            if now - self._waiting_said < self._report_every_s:
                return []
            self._waiting_said = now
            if beat.batches == 0:
                return [f"pipeline: the first micro-batch has run for {now - started:.0f} s"]
            return [
                f"pipeline: {_batches(beat.batches)}, {beat.records:,} records landed in "
                f"{now - started:.0f} s; not all served yet: a backlog drains (the dashboard "
                f"is updated every {CATCH_UP_PUBLISH_EVERY_S:.0f} s meanwhile), or batches "
                "fail (the Dagster UI says why)"
            ]
        self._reported = (now, beat.batches, beat.records)
        return [
            f"pipeline: all landed is served after {beat.served_at - started:.1f} s, "
            f"{beat.records:,} records in {_batches(beat.batches)}; the dashboard shows "
            f"them. From now on a line every {self._report_every_s:.0f} s; every batch is in "
            "the Dagster UI"
        ]


def _batches(count: int) -> str:
    return f"{count} micro-batch" + ("" if count == 1 else "es")
