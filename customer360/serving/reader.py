"""Read the published serving database: read-only, following each new publication.

Each publication points the serving path at another file (a new link to one of the publisher's
slots, a different inode, see publish.py). `ServingReader` keeps one read-only
DuckDB instance per published file (a `ServingCopy`) and opens a new one when the path points at
a new file: every request `os.stat`s the path (microseconds), so a new copy is read from the
first request after its rename. A query that started on the old file finishes there (its cursor
keeps the old instance alive; the instance closes once its last cursor is gone).

The file is attached to a private in-memory database rather than opened with
`duckdb.connect(path)`: DuckDB caches instances by path within a process, so connecting to the
same path again would return the old file's instance.

Latency (the profile API's p99 target): a copy keeps its idle cursors for reuse (`session()`), so
a request does not pay for a new cursor and its `use`; and the instance runs each query on the
calling thread (`threads=1`): the lookups are point queries on a few rows, and handing them to
DuckDB's worker threads only adds wake-ups (a search scans 100,000 rows as fast on one thread).

Letting go: the publisher writes a serving file in place again once no process holds it (see
publish.py, slots), so a copy that a newer one replaced is closed as soon as its last cursor is
given back, rather than whenever it is garbage-collected.

Time zone: the views' `age` is dbt's rule over "the day the view is read, in UTC"
(dbt/macros/age_in_years.sql, reading_date), and DuckDB turns the current time into a date in
the session's time zone (with the ICU extension), so the copy's connections run in UTC.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

CATALOG = "serving"


class ServingNotPublished(RuntimeError):
    """No serving copy has been published at the path yet."""


def _in_utc(con: duckdb.DuckDBPyConnection) -> None:
    """Dates of the current time in UTC. Without the ICU extension DuckDB has no time zones and
    computes them in UTC anyway (setting one then fails)."""
    try:
        con.execute("set TimeZone = 'UTC'")
    except duckdb.Error:
        pass


def publication_identity(path: Path) -> tuple[int, int, int]:
    """Which publication the serving path holds now: each one is a new (device, inode, mtime)."""
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise ServingNotPublished(
            f"no serving database at {path} yet: run a micro-batch "
            "(`c360 run-once` or `c360 up`) so the pipeline publishes one"
        ) from exc
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


class ServingCopy:
    """One published serving file, open read-only, with a pool of idle cursors."""

    def __init__(self, path: Path, identity: tuple[int, int, int]):
        self.identity = identity
        self.con = duckdb.connect(":memory:", config={"threads": 1})
        try:
            _in_utc(self.con)
            path_sql = str(path).replace("'", "''")
            self.con.execute(f"attach '{path_sql}' as {CATALOG} (read_only)")
            self.con.execute(f"use {CATALOG}")
            # (published_at, data_as_of, customers)
            self.publication: tuple = self.con.execute(
                "select published_at, data_as_of, customers from serving_publication"
            ).fetchone()
        except BaseException:
            self.con.close()
            raise
        self._lock = threading.Lock()
        self._idle: list[duckdb.DuckDBPyConnection] = []
        self._busy = 0
        self._lent = False  # a cursor was handed out for good (`ServingReader.cursor`)
        self._retired = False

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An idle cursor of this copy (or a new one), given back to the pool afterwards."""
        with self._lock:
            cur = self._idle.pop() if self._idle else None
            self._busy += 1
        try:
            if cur is None:
                cur = self.con.cursor()
                cur.execute(f"use {CATALOG}")
        except BaseException:
            self._given_back(None)
            raise
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
            self._given_back(cur if reuse else None, close=None if reuse else cur)

    def _given_back(self, cur, close=None) -> None:
        """A busy cursor returns: pooled (`cur`) or closed (`close`); the last one to return
        to a retired copy closes it."""
        with self._lock:
            self._busy -= 1
            if cur is not None and not self._retired:
                self._idle.append(cur)
                cur = None
            last = self._retired and self._busy == 0 and not self._lent
        for done in (cur, close):
            if done is not None:
                done.close()
        if last:
            self.con.close()

    def lend_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the caller to close; this copy then closes when garbage-collected."""
        with self._lock:
            self._lent = True
        cur = self.con.cursor()
        cur.execute(f"use {CATALOG}")
        return cur

    def retire(self) -> None:
        """A newer copy is served: close the idle cursors, and the copy once no cursor is busy
        (the publisher may then write its file again)."""
        with self._lock:
            self._retired = True
            idle, self._idle = self._idle, []
            last = self._busy == 0 and not self._lent
        for cur in idle:
            cur.close()
        if last:
            self.con.close()

    def close(self) -> None:
        self.retire()
        self.con.close()


class ServingReader:
    def __init__(self, path: Path):
        self.path = Path(path).absolute()
        self._lock = threading.Lock()
        self._copy: ServingCopy | None = None

    def publication(self) -> tuple:
        """(published_at, data_as_of, customers) of the latest copy opened."""
        return self._copy.publication if self._copy is not None else ()

    def current(self) -> ServingCopy:
        """The latest published copy, opened on first use."""
        identity = publication_identity(self.path)
        copy = self._copy
        if copy is None or copy.identity != identity:
            with self._lock:
                if self._copy is None or self._copy.identity != identity:
                    old, self._copy = self._copy, self._open(identity)
                    if old is not None:
                        # Its instance closes once the cursors still reading it are gone.
                        old.retire()
                copy = self._copy
        return copy

    def _open(self, identity: tuple[int, int, int]) -> ServingCopy:
        try:
            return ServingCopy(self.path, identity)
        except duckdb.IOException:
            # The file the path named when opened was being written again (the path moved on
            # twice while this process was not running): open what it names now, once.
            st = os.stat(self.path)
            return ServingCopy(self.path, (st.st_dev, st.st_ino, st.st_mtime_ns))

    @contextmanager
    def session(self) -> Iterator[tuple[ServingCopy, duckdb.DuckDBPyConnection]]:
        """(copy, cursor) for one request: a pooled cursor on the latest published copy."""
        copy = self.current()
        with copy.cursor() as cur:
            yield copy, cur

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the latest published copy, for one caller (close it after use)."""
        return self.current().lend_cursor()

    def close(self) -> None:
        with self._lock:
            if self._copy is not None:
                self._copy.close()
            self._copy = None
