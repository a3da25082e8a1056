"""The cursors of one opened publication of the serving copy, and which publication is served.

Both readers of the serving copy, the profile API's (`reader.ServingCopy`: a read-only DuckDB
instance of its own per publication) and the SQL endpoint's (`sql_endpoint.catalog.EndpointCopy`:
the publication attached to the endpoint's database), open each publication of the serving file
once and read it through DuckDB cursors. What they share is the life of an opened publication,
`CopyCursorPool`:

- a request takes an idle cursor of the copy, or a new one, and gives it back afterwards
  (`acquire` / `release`, or `cursor()`): no cursor is made on the hot path; a cursor whose query
  failed or was interrupted is closed, not handed on;
- a transaction keeps the publication it began on (`pin` / `unpin`): all its statements read
  that one, never half of the next batch;
- when a newer publication is served the old copy is retired (`retire`): its idle cursors are
  closed at once, and the copy itself is let go (`_close`: the instance closed, the attachment
  detached) once no cursor is busy and nobody pins it. The publisher then writes its file again
  (see publish.py, slots): a reader never holds the pipeline up;
- a copy that was let go hands out nothing (`acquire` and `pin` raise `CopyClosed`).

`LatestCopy` follows the serving path: it opens a copy for each new publication, retires the one
it replaces, and hands out a cursor (or a pin) of the latest copy; when that copy is let go
between being looked up and being taken (a newer publication came and its last user left), it
takes the newer one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import duckdb

Cursor = duckdb.DuckDBPyConnection


class CopyClosed(RuntimeError):
    """The copy was retired and let go: take the latest one again."""


class CopyCursorPool:
    """One opened publication of the serving copy: its idle cursors, the busy ones, its pins.

    A subclass says how to make a cursor of the copy (`_new_cursor`) and how to let the copy go
    (`_close`); `_close` runs once, when the copy is retired and unused.
    """

    def __init__(self, identity: tuple) -> None:
        self.identity = identity  # which publication (publication_identity of the path)
        self._lock = threading.Lock()
        self._idle: list[Cursor] = []
        self._busy = 0
        self._pins = 0
        self._retired = False
        self._closed = False

    def _new_cursor(self) -> Cursor:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def acquire(self) -> Cursor:
        """An idle cursor of this copy, or a new one; give it back with `release`."""
        with self._lock:
            if self._closed:
                raise CopyClosed(self.identity)
            self._busy += 1
            cur = self._idle.pop() if self._idle else None
        if cur is None:
            try:
                cur = self._new_cursor()
            except BaseException:
                self.release(None)
                raise
        return cur

    def release(self, cur: Cursor | None, reuse: bool = True) -> None:
        """A busy cursor comes back: kept for the next request (`reuse`, and the copy is still
        served) or closed; the last user of a retired copy lets it go."""
        with self._lock:
            self._busy -= 1
            if cur is not None and reuse and not self._retired:
                self._idle.append(cur)
                cur = None
            last = self._last_user_gone()
        if cur is not None:
            cur.close()
        if last:
            self._close()

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        """A cursor of this copy for a `with` block, given back afterwards."""
        with self.given_back(self.acquire()) as cur:
            yield cur

    @contextmanager
    def given_back(self, cur: Cursor) -> Iterator[Cursor]:
        """An acquired cursor, released when the `with` block ends: kept for reuse unless its
        query failed or was interrupted."""
        reuse = False
        try:
            yield cur
            reuse = True
        except (duckdb.Error, KeyboardInterrupt, SystemExit):
            raise  # a failed or interrupted query: the cursor is not handed on
        except BaseException:
            reuse = True  # the caller's own error (a 404, ...): the cursor is fine
            raise
        finally:
            self.release(cur, reuse)

    def pin(self) -> None:
        """Someone keeps this copy (a transaction, a lent cursor): not let go until unpinned."""
        with self._lock:
            if self._closed:
                raise CopyClosed(self.identity)
            self._pins += 1

    def unpin(self) -> None:
        with self._lock:
            self._pins -= 1
            last = self._last_user_gone()
        if last:
            self._close()

    def retire(self) -> None:
        """A newer copy is served: close the idle cursors; let this one go once unused."""
        with self._lock:
            self._retired = True
            idle, self._idle = self._idle, []
            last = self._last_user_gone()
        for cur in idle:
            cur.close()
        if last:
            self._close()

    def _last_user_gone(self) -> bool:
        """(Under the lock.) Whether the copy is to be let go now: True once."""
        if self._retired and not self._busy and not self._pins and not self._closed:
            self._closed = True
            return True
        return False


Copy = TypeVar("Copy", bound=CopyCursorPool)
T = TypeVar("T")


class LatestCopy(Generic[Copy]):
    """The copy of the publication the serving path holds now, opened once per publication.

    `identity()` says which publication the path holds (cheap: a stat), `open_copy(identity)`
    opens it; the copy it replaces is retired.
    """

    def __init__(self, identity: Callable[[], tuple], open_copy: Callable[[tuple], Copy]) -> None:
        self._identity = identity
        self._open_copy = open_copy
        self._lock = threading.Lock()
        self._copy: Copy | None = None

    @property
    def opened(self) -> Copy | None:
        """The latest copy opened, if any (without looking at the path)."""
        return self._copy

    def current(self) -> Copy:
        """The latest published copy, opened on first use."""
        identity = self._identity()
        copy = self._copy
        if copy is None or copy.identity != identity:
            with self._lock:
                if self._copy is None or self._copy.identity != identity:
                    old, self._copy = self._copy, self._opened_as_named()
                    if old is not None:
                        old.retire()  # let go once the cursors and pins still on it are gone
                copy = self._copy
        return copy

    def _opened_as_named(self) -> Copy:
        """A copy of the publication the path names, known to be the file it opened.

        The path can move on between being looked at and being opened: the copy would then
        hold a newer file than its identity says, and the next lookup would open that file a
        second time in this process. Closing one of two opens of a file releases the process's
        lock on it (DuckDB's locks are POSIX record locks, one per process and file), so the
        publisher would see the file free and rewrite it while the other copy still reads it.
        A copy whose path moved on while it was opened is closed and the path opened again.
        """
        while True:
            copy = self._open_copy(self._identity())
            if self._identity() == copy.identity:
                return copy
            copy.retire()  # never handed out: closed at once

    def on_latest(self, take: Callable[[Copy], T]) -> tuple[Copy, T]:
        """(copy, take(copy)) of the latest copy, where `take` takes a cursor or a pin of it:
        when the copy found was let go before `take` (a newer publication came meanwhile and
        its last user left), the newer one is taken."""
        while True:
            copy = self.current()
            try:
                return copy, take(copy)
            except CopyClosed:
                continue

    def acquire(self) -> tuple[Copy, Cursor]:
        """(copy, cursor) of the latest copy; give the cursor back with `copy.release`."""
        return self.on_latest(CopyCursorPool.acquire)

    @contextmanager
    def session(self) -> Iterator[tuple[Copy, Cursor]]:
        """(copy, cursor) of the latest copy for a `with` block."""
        copy, cur = self.acquire()
        with copy.given_back(cur):
            yield copy, cur

    def pinned(self) -> Copy:
        """The latest copy, pinned: it stays open until the caller unpins it."""
        return self.on_latest(CopyCursorPool.pin)[0]

    def forget(self) -> Copy | None:
        """Stop following the path: the latest copy, for the caller to retire or close."""
        with self._lock:
            copy, self._copy = self._copy, None
        return copy
