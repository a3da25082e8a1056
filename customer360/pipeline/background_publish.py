"""Publishing the serving copy on a thread of its own, while the next micro-batch runs.

A micro-batch's publication (bringing a serving slot up to date, serving/publish.py) takes a
fifth to a third of a batch, and nothing in the next batch needs it: the next extract lands raw
rows, the next replayed build writes the marts in one transaction of its own. Run back to back,
the loop waited for it all the same, so every record waited for the batch before it to publish
as well. `BackgroundPublisher` publishes on its own DuckDB connection beside the next batch.

What keeps a publication whole:

- A publication reads the marts in one transaction (publish.py), so it sees them as the last
  committed build left them. A replayed build commits every model at once (model_replay.py), so
  a publication beside it sees all of the build before, or, once it committed, all of it.
- A build through dbt commits model by model; a publication reading between two of its models
  would record a customer's new batch marks beside another mart's old rows, and never replace
  them. `paused()` holds publications off for such a build: the publications asked for before
  it end first, and none starts until the build is done.
- DuckDB lets the warehouse checkpoint while a publication reads (a reader keeps its snapshot).

Requests that arrive while a publication runs are folded into one more publication after it,
of the marts as they are then. A failed publication is raised to the next request (the batch
that asks reports it); that request still stands, so the next publication tries again. `close()`
finishes a requested publication before it stops, so the serving copy is left current.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from customer360.serving.publish import PublishResult

log = logging.getLogger(__name__)


class BackgroundPublisher:
    """Runs `publish` on a thread of its own whenever asked, one publication at a time."""

    def __init__(self, publish: Callable[[], PublishResult]):
        self._publish = publish
        self._state = threading.Condition()
        self._requested = False
        self._running = False
        self._pauses = 0
        self._closing = False
        self._done: PublishResult | None = None  # the latest publication not yet handed out
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="serving-publisher", daemon=True)
        self._thread.start()

    def request(self) -> PublishResult | None:
        """Ask for a publication of the marts as they are now. Returns the publication that
        ended since the last request (None if none did); raises the error of one that failed."""
        with self._state:
            self._requested = True
            self._state.notify_all()
            done, self._done = self._done, None
            error, self._error = self._error, None
        if error is not None:
            raise error
        return done

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No publication runs inside this block. The running one, and one asked for, end
        first: they publish the marts as they were before the block (a build that fails inside
        it leaves the marts half-built, and nothing asks to publish them)."""
        with self._state:
            self._state.wait_for(lambda: not self._running and not self._requested)
            self._pauses += 1
        try:
            yield
        finally:
            with self._state:
                self._pauses -= 1
                self._state.notify_all()

    def wait_idle(self) -> None:
        """Until no publication runs or waits to run."""
        with self._state:
            self._state.wait_for(lambda: not self._running and not self._requested)

    def close(self) -> PublishResult | None:
        """Finish a requested publication, then stop; returns the last one not handed out."""
        with self._state:
            self._closing = True
            self._state.notify_all()
        self._thread.join()
        with self._state:
            done, self._done = self._done, None
            error, self._error = self._error, None
        if error is not None:
            log.warning("the last serving publication failed: %s", error)
        return done

    def _serve(self) -> None:
        while True:
            with self._state:
                self._state.wait_for(
                    lambda: (
                        (self._requested and not self._pauses)
                        or (self._closing and not self._requested)
                    )
                )
                if not self._requested:
                    return  # closing, nothing asked for
                self._requested = False
                self._running = True
            try:
                done, error = self._publish(), None
            except BaseException as exc:  # noqa: BLE001 - handed to the next request
                done, error = None, exc
            with self._state:
                self._running = False
                if error is None:
                    self._done = done
                else:
                    self._error = error
                self._state.notify_all()
