"""When a micro-batch publishes the serving copy: after every batch, except while a backlog drains.

Publishing after each batch of a catch-up took 16 % of it: 15.4 of 98.6 s for a backlog of
1,000,000 events at 100,000 customers and 1 M events of history, 16 batches of ~62,000 records
and 16 publications of ~12,000 customers each, 0.6-1.4 s (`c360 bench --history-events 1000000
--backlog-events 1000000`, 2026-12-04 16:22), for readers whose copy is behind by the whole
backlog anyway. So while batches come back full (a source read `max_records`, or stopped, its
time up, with more waiting: microbatch.caught_up), the copy is published every `every_s` from
the first such batch on, and once the backlog is drained. A period shorter than such a batch
(~6 s then, ~10 s since a batch reads up to 250,000 records a source) would save nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CATCH_UP_PUBLISH_EVERY_S = 30.0


class PublishSchedule:
    """Ask `due(caught_up)` after each batch's build; call `published()` after publishing."""

    def __init__(
        self,
        every_s: float = CATCH_UP_PUBLISH_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.every_s = every_s
        self._clock = clock
        self._published_at = float("-inf")
        self._draining_since: float | None = None

    def due(self, caught_up: bool) -> bool:
        """Whether to publish after a batch that took in everything waiting (`caught_up`) or
        left more waiting."""
        if caught_up:
            self._draining_since = None
            return True
        now = self._clock()
        if self._draining_since is None:
            self._draining_since = now
        return now - max(self._draining_since, self._published_at) >= self.every_s

    def published(self) -> None:
        self._published_at = self._clock()
