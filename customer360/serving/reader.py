"""Read the published serving database: read-only, following each new publication.

Each publication replaces the serving file (a new inode). `ServingReader` keeps one read-only
DuckDB instance per published file and opens a new one when the path points at a new file; a
query that started on the old file finishes there (its cursor keeps the old instance alive).

The file is attached to a private in-memory database rather than opened with
`duckdb.connect(path)`: DuckDB caches instances by path within a process, so connecting to the
same path again would return the old file's instance.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb

CATALOG = "serving"


class ServingNotPublished(RuntimeError):
    """No serving copy has been published at the path yet."""


class ServingReader:
    def __init__(self, path: Path):
        self.path = Path(path).absolute()
        self._lock = threading.Lock()
        self._identity: tuple[int, int, int] | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._publication: tuple = ()

    def publication(self) -> tuple:
        """(published_at, data_as_of, customers) of the copy the latest cursor reads."""
        return self._publication

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection to the latest published copy, for one request (close it after use)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError as exc:
            raise ServingNotPublished(
                f"no serving database at {self.path} yet: run a micro-batch "
                "(`c360 run-once` or `c360 up`) so the pipeline publishes one"
            ) from exc
        identity = (st.st_dev, st.st_ino, st.st_mtime_ns)
        con = self._con
        if identity != self._identity or con is None:
            with self._lock:
                if identity != self._identity or self._con is None:
                    fresh = duckdb.connect(":memory:")
                    path_sql = str(self.path).replace("'", "''")
                    fresh.execute(f"attach '{path_sql}' as {CATALOG} (read_only)")
                    fresh.execute(f"use {CATALOG}")
                    self._publication = fresh.execute(
                        "select published_at, data_as_of, customers from serving_publication"
                    ).fetchone()
                    # The old instance closes once its last cursor is gone.
                    self._con, self._identity = fresh, identity
                con = self._con
        cur = con.cursor()
        cur.execute(f"use {CATALOG}")
        return cur

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = self._identity = None
