"""The DuckDB warehouse as the extractors see it: one writer, raw tables, batch ids.

DuckDB lets one process write a database file. When another holds it, we wait with backoff up to a
bound and then fail with DuckDB's own words, which name the process holding the lock.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from extractors.batch import BatchResult
from extractors.landing_schema import RAW_SCHEMA_DDL

log = logging.getLogger(__name__)

LOCK_WAIT_S = 30.0


class WarehouseLockedError(RuntimeError):
    """Another process holds the warehouse's write lock longer than we were willing to wait."""


def connect_warehouse(path: Path, lock_wait_s: float = LOCK_WAIT_S) -> duckdb.DuckDBPyConnection:
    """Open the warehouse for writing, creating it and the raw schema on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_wait_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path))
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise WarehouseLockedError(
                    f"The warehouse {path} stayed locked for {lock_wait_s:.0f} s: {exc}. "
                    "Only one process may write it at a time; stop the other writer "
                    "(another `c360 extract --follow`, `c360 up` or a Dagster run)."
                ) from exc
            log.info("warehouse %s is locked by another process; retrying in %.2f s", path, delay)
            time.sleep(delay * (1 + random.random() / 2))
            delay = min(delay * 2, 2.0)
    con.execute("set timezone = 'UTC'")
    con.execute(RAW_SCHEMA_DDL)
    _create_batch_id_sequence(con)
    return con


def _create_batch_id_sequence(con: duckdb.DuckDBPyConnection) -> None:
    """The sequence batch ids come from, created once, after the ids a warehouse already holds.

    A sequence, not `max(batch_id) + 1`, because sources land side by side on their own cursors:
    each gets ids no other transaction can take, and one source's ids still increase in the
    order its batches commit (its batches land one after another), which is what the dbt
    watermarks need (see dbt/macros/incremental.sql).
    """
    exists = con.execute(
        "select count(*) from duckdb_sequences() "
        "where schema_name = 'raw' and sequence_name = '_batch_ids'"
    ).fetchone()[0]
    if not exists:
        (start,) = con.execute("select coalesce(max(batch_id), 0) + 1 from raw._batches").fetchone()
        con.execute(f"create sequence if not exists raw._batch_ids start with {int(start)}")


def utcnow() -> datetime:
    """Now in UTC as a naive timestamp: DuckDB `timestamp` columns hold UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def next_batch_id(con: duckdb.DuckDBPyConnection) -> int:
    """The next batch id, unique across concurrent transactions (a rolled-back one leaves a gap)."""
    return con.execute("select nextval('raw._batch_ids')").fetchall()[0][0]


def record_batch(con: duckdb.DuckDBPyConnection, batch: BatchResult, started_at: datetime) -> None:
    """The row of raw._batches for `batch`. Call inside the batch's transaction."""
    con.execute(
        "insert into raw._batches values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            batch.batch_id,
            batch.source,
            started_at,
            utcnow(),
            batch.records,
            batch.quarantined,
            batch.bytes,
            batch.position_before,
            batch.position_after,
        ],
    )
