"""Background work held to a share of the time, so that it does not slow the micro-batches.

The dbt data tests read every staged table and mart: ~250 queries, ~8 s of work at 100,000
customers on this project's 2-core machine. Run flat out beside the micro-batches they took
both cores and Python's lock for those seconds, and the batches meanwhile took 3-5x as long:
every 15 minutes the data were 5-8 s old instead of 1-2 s (`c360 bench`, 2026-12-03). Paced,
the same work takes 1/share as long, and a batch overlaps one test query at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    """Call `step_done()` after each step of some work: it sleeps long enough that the steps
    took at most `share` of the time since the first step began. `hurry()` ends any sleep now
    and for good (the work is wanted finished, e.g. before the warehouse is handed over), as
    does `hurry_when` returning true after a step (someone waits for what the work holds)."""

    def __init__(
        self,
        share: float,
        hurry_when: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.share = share
        self._hurry_when = hurry_when
        self._clock = clock
        self._hurry = threading.Event()
        self._resumed = clock()
        self.slept_s = 0.0

    def step_done(self) -> None:
        if self._hurry_when is not None and self._hurry_when():
            self.hurry()
        busy = self._clock() - self._resumed  # the step, since the last pause ended
        pause = busy * (1 / self.share - 1)
        if pause > 0 and not self._hurry.is_set():
            self._wait(pause)
        now = self._clock()
        self.slept_s += now - self._resumed - busy
        self._resumed = now

    def hurry(self) -> None:
        self._hurry.set()

    def _wait(self, seconds: float) -> None:
        self._hurry.wait(seconds)
