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

Latency (the profile API's p99 target): a copy keeps its idle cursors for reuse (`session()`;
the pool is cursor_pool.py's, shared with the SQL endpoint), so a request does not pay for a
new cursor and its `use`; and the instance runs each query on the calling thread
(`threads=1`): the lookups are point queries on a few rows, and handing them to DuckDB's
worker threads only adds wake-ups (a search scans 100,000 rows as fast on one thread).

Letting go: the publisher writes a serving file in place again once no process holds it (see
publish.py, slots), so a copy that a newer one replaced is closed as soon as its last cursor is
given back, rather than whenever it is garbage-collected.

Time zone: the views' `age` is dbt's rule over "the day the view is read, in UTC"
(dbt/macros/age_in_years.sql, reading_date), and DuckDB turns the current time into a date in
the session's time zone (with the ICU extension), so the copy's connections run in UTC.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path

import duckdb

from customer360.serving.cursor_pool import CopyCursorPool, LatestCopy

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
            f"no serving database at {path} yet: the pipeline publishes it once it has built "
            "what it landed (`c360 up` prints when: 'all landed is served'); without `c360 up`, "
            "run a micro-batch: `c360 run-once`"
        ) from exc
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


class ServingCopy(CopyCursorPool):
    """One published serving file, open read-only in a DuckDB instance of its own, with a pool
    of idle cursors (cursor_pool.py); closed once retired and unused."""

    def __init__(self, path: Path, identity: tuple[int, int, int]):
        super().__init__(identity)
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

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self.con.cursor()
        cur.execute(f"use {CATALOG}")
        return cur

    def _close(self) -> None:
        self.con.close()

    def lend_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the caller to close; this copy then closes when garbage-collected."""
        self.pin()  # for good: the pool cannot tell when the caller is done
        return self._new_cursor()

    def close(self) -> None:
        self.retire()
        self.con.close()


class ServingReader:
    def __init__(self, path: Path):
        self.path = Path(path).absolute()
        self._latest: LatestCopy[ServingCopy] = LatestCopy(
            lambda: publication_identity(self.path), self._open
        )

    def publication(self) -> tuple:
        """(published_at, data_as_of, customers) of the latest copy opened."""
        copy = self._latest.opened
        return copy.publication if copy is not None else ()

    def current(self) -> ServingCopy:
        """The latest published copy, opened on first use."""
        return self._latest.current()

    def _open(self, identity: tuple[int, int, int]) -> ServingCopy:
        try:
            return ServingCopy(self.path, identity)
        except duckdb.IOException:
            # The file the path named when opened was being written again (the path moved on
            # twice while this process was not running): open what it names now, once.
            return ServingCopy(self.path, publication_identity(self.path))

    def session(self) -> AbstractContextManager[tuple[ServingCopy, duckdb.DuckDBPyConnection]]:
        """(copy, cursor) for one request: a pooled cursor on the latest published copy."""
        return self._latest.session()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the latest published copy, for one caller (close it after use)."""
        return self._latest.on_latest(ServingCopy.lend_cursor)[1]

    def close(self) -> None:
        copy = self._latest.forget()
        if copy is not None:
            copy.close()
