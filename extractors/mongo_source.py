"""MongoDB collection -> raw landing table, by change stream, exactly once.

First run: open the change stream and keep its position, copy the collection in `_id` order in
bounded batches, then follow the stream from the kept position. A write during the copy is seen by
the copy, by the stream, or both; since every row holds the whole document and the current state is
the row with the greatest cluster time, seeing it twice changes nothing.

Each batch's rows and the new position (copy progress or resume token) are committed in one DuckDB
transaction, so a crash at any instant leaves either both or neither.

If the stream cannot resume (its history is gone) the collection is copied again; when that copy
ends, documents that the warehouse still holds but the copy did not see land as deletes, so nothing
deleted during the gap survives. Each such event is logged loudly and recorded in raw._resnapshots.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pymongo
from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS, RELAXED_JSON_OPTIONS
from bson.objectid import ObjectId
from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from extractors.batch import BatchResult
from extractors.warehouse import next_batch_id, record_batch, utcnow

log = logging.getLogger(__name__)

# Server codes that mean "this stream can never resume": a token it no longer knows
# (InvalidResumeToken), a dead stream (ChangeStreamFatalError) or lost history.
UNRESUMABLE_CODES = {260, 280, 286}
# Events after which the collection is gone or elsewhere: copy it again.
COLLECTION_ENDING_EVENTS = {"drop", "rename", "dropDatabase", "invalidate"}
STREAM_AWAIT_MS = 10
# Documents per reply of the copy's cursor: what a batch lands at least once its time is up.
COPY_BATCH = 5000
# How long a batch's reads of the copy may take, instead of the client's socket timeout for each
# reply: a server may read and sort the whole collection before its first reply. SecantusDB
# does: for `c360 bench --customers 100000 --history-events 10000000` (100,000 users, 157,000
# and 58,000 orders) the three copies' first replies took 98-137 s on a busy 2-core machine,
# past the 60 s socket timeout, so every batch's copy failed, was asked again, sorted again,
# and never landed. (A mongod walks the `_id` index and answers at once.)
COPY_READ_TIMEOUT_S = 1800.0


class MongoExtractError(RuntimeError):
    """MongoDB could not be read; nothing of the batch was landed."""


def _close_quietly(cursor) -> None:
    """Close a cursor or change stream, if open; one on a broken connection may fail to close."""
    if cursor is not None:
        with contextlib.suppress(PyMongoError):
            cursor.close()


@dataclass
class ChangeRows:
    """The rows one batch lands into `raw.<collection>`, column by column."""

    operations: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    cluster_times: list[int] = field(default_factory=list)
    documents: list[str | None] = field(default_factory=list)

    def add(self, operation: str, key: str, cluster_time: int, document: str | None) -> None:
        self.operations.append(operation)
        self.keys.append(key)
        self.cluster_times.append(cluster_time)
        self.documents.append(document)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class MongoPosition:
    resume_token: str
    stream_start_cluster_time: int
    snapshot_done: bool
    snapshot_after_id: str | None


def cluster_time_number(ts: Timestamp) -> int:
    """A Mongo cluster time as one sortable integer: (seconds << 32) + increment."""
    return (ts.time << 32) + ts.inc


def cluster_time_at(number: int) -> datetime:
    return datetime.fromtimestamp(number >> 32, UTC).replace(tzinfo=None)


def document_key_text(key) -> str:
    if isinstance(key, ObjectId):
        return str(key)
    return json_util.dumps(key, json_options=RELAXED_JSON_OPTIONS)


def document_json(document) -> str | None:
    if document is None:
        return None
    return json_util.dumps(document, json_options=RELAXED_JSON_OPTIONS)


class MongoSource:
    """One MongoDB collection, its change stream kept open between micro-batches."""

    def __init__(self, client: MongoClient, database: str, name: str):
        self.name = name
        self.collection = client[database][name]
        self.client = client
        self._stream = None
        self._stream_token: str | None = None  # the stored token the open stream started from
        # A change read from the open stream but left for the next batch (see _stream_batch).
        self._held_change: dict | None = None
        self._copy = None  # the open cursor of a copy in progress
        # (stream start, copy position) that cursor stands at, as stored in the warehouse
        self._copy_after: tuple | None = None
        self._copy_taken = 0  # documents taken from that cursor

    def close(self) -> None:
        _close_quietly(self._stream)
        self._stream = None
        self._stream_token = None
        self._held_change = None  # a stream opened again at the stored token reads it again
        self._close_copy()

    # -- positions ------------------------------------------------------------------------
    def position(self, con: duckdb.DuckDBPyConnection) -> MongoPosition | None:
        row = con.execute(
            "select resume_token, stream_start_cluster_time, snapshot_done, snapshot_after_id"
            " from raw._mongo_positions where collection = ?",
            [self.name],
        ).fetchall()
        return MongoPosition(*row[0]) if row else None

    def _save_position(self, con, position: MongoPosition, batch_id: int) -> None:
        con.execute(
            "insert or replace into raw._mongo_positions values (?, ?, ?, ?, ?, ?, ?)",
            [
                self.name,
                position.resume_token,
                position.stream_start_cluster_time,
                position.snapshot_done,
                position.snapshot_after_id,
                batch_id,
                utcnow(),
            ],
        )

    def _open_new_stream_position(self) -> MongoPosition:
        """Open a change stream now and return its position, for a copy that starts after it."""
        # The cluster time before the stream opens: every event the stream will deliver is later,
        # so snapshot rows stamped with it sort before them.
        before = self.client.admin.command("ping").get("operationTime")
        with self.collection.watch(full_document="updateLookup") as stream:
            token = stream.resume_token
        if before is None:  # a server that does not report cluster times
            before = Timestamp(int(time.time()) - 1, 0)
        return MongoPosition(json.dumps(token), cluster_time_number(before), False, None)

    # -- one micro-batch ------------------------------------------------------------------
    def extract(
        self, con: duckdb.DuckDBPyConnection, max_records: int, max_seconds: float
    ) -> BatchResult:
        started = time.monotonic()
        try:
            position = self.position(con)
            if position is None:
                position = self._open_new_stream_position()
                log.info("%s: first run; change stream opened, copying the collection", self.name)
            if not position.snapshot_done:
                return self._copy_batch(con, position, max_records, started + max_seconds, started)
            return self._stream_batch(con, position, max_records, started + max_seconds, started)
        except PyMongoError as exc:
            self.close()
            raise MongoExtractError(
                f"reading {self.collection.full_name} from MongoDB failed: {exc}. "
                "Nothing of this batch was landed; the next batch continues from the stored "
                "position. Is the server running? `c360 services status`"
            ) from exc
        except BaseException:
            # Landing failed (the warehouse): the copy's cursor and the stream have read past
            # what was landed, so the next batch opens them again at the stored position.
            self.close()
            raise

    def _copy_cursor(self, position: MongoPosition):
        """The copy's cursor, kept open between batches: a server may sort the whole collection
        before it returns the first document, so asking again for every batch would cost a full
        sort each time. A new one starts after the stored position."""
        where = (position.stream_start_cluster_time, position.snapshot_after_id)
        if self._copy is not None and self._copy_after == where:
            return self._copy
        self._close_copy()
        query = {}
        if position.snapshot_after_id is not None:
            after = json_util.loads(position.snapshot_after_id, json_options=CANONICAL_JSON_OPTIONS)
            # An aggregation comparison, not `{"_id": {"$gt": after}}`: a query's `$gt` matches
            # only values of the same BSON type, so after an integer `_id` it skipped every
            # string, ObjectId or date `_id` that sorts after it. `$literal`: an `_id` such as
            # "$x" or {"$k": 1} is a value, not a field path or an operator.
            query = {"$expr": {"$gt": ["$_id", {"$literal": after["_id"]}]}}
        self._copy = self.collection.find(query, sort=[("_id", 1)], batch_size=COPY_BATCH)
        self._copy_after = where
        self._copy_taken = 0
        return self._copy

    def _close_copy(self) -> None:
        _close_quietly(self._copy)
        self._copy = None
        self._copy_after = None

    def _copy_batch(self, con, position: MongoPosition, max_records, deadline, started):
        started_at = utcnow()
        cursor = self._copy_cursor(position)
        rows = ChangeRows()
        last_id = None
        exhausted = False
        with pymongo.timeout(COPY_READ_TIMEOUT_S):
            while len(rows) < max_records:
                document = next(cursor, None)
                if document is None:
                    exhausted = True
                    break
                self._copy_taken += 1
                last_id = document["_id"]
                rows.add(
                    "snapshot",
                    document_key_text(last_id),
                    position.stream_start_cluster_time,
                    document_json(document),
                )
                # Time is up only between the server's replies: the documents of the last one are
                # already here, and landing them costs little. (A server may sort the whole
                # collection before its first reply: checked after each document, a first reply
                # slower than the batch's time landed one document of its 5,000.)
                if time.monotonic() >= deadline and cursor.retrieved <= self._copy_taken:
                    break
        after_id = position.snapshot_after_id
        if last_id is not None:
            after_id = json_util.dumps({"_id": last_id}, json_options=CANONICAL_JSON_OPTIONS)
        new_position = replace(position, snapshot_done=exhausted, snapshot_after_id=after_id)
        result = self._land(
            con,
            rows,
            position=position,
            new_position=new_position,
            started_at=started_at,
            started=started,
            finish_copy=exhausted,
        )
        if exhausted:
            self._close_copy()
            log.info("%s: copy finished; following the change stream", self.name)
            return result
        if self._copy is not None:
            self._copy_after = (position.stream_start_cluster_time, after_id)
        return replace(result, remaining_lag=None)  # the rest of the copy: not counted

    def _open_stream(self, position: MongoPosition):
        if self._stream is None or self._stream_token != position.resume_token:
            self.close()
            self._stream = self.collection.watch(
                full_document="updateLookup",
                resume_after=json.loads(position.resume_token),
                max_await_time_ms=STREAM_AWAIT_MS,
                batch_size=1000,
            )
            self._stream_token = position.resume_token
        return self._stream

    def _stream_batch(self, con, position: MongoPosition, max_records, deadline, started):
        started_at = utcnow()
        try:
            stream = self._open_stream(position)
            rows = ChangeRows()
            ended_by = None
            caught_up = False
            # The changes of one transaction share its cluster time, so within a batch nothing
            # orders two changes of one document there (a delete and an insert of the same
            # `_id` read as deleted). A batch ends before the second such change, and the next
            # batch lands it: (cluster_time, batch_id) orders them, as landing_schema.py says.
            landed_at_time: set[tuple[str, int]] = set()
            while len(rows) < max_records and time.monotonic() < deadline:
                change, self._held_change = self._held_change or stream.try_next(), None
                if change is None:
                    caught_up = True
                    break
                operation = change["operationType"]
                if operation in COLLECTION_ENDING_EVENTS:
                    ended_by = operation
                    break
                if operation not in ("insert", "update", "replace", "delete"):
                    continue  # DDL events such as createIndexes carry no document
                key = document_key_text(change["documentKey"]["_id"])
                cluster_time = cluster_time_number(change["clusterTime"])
                if (key, cluster_time) in landed_at_time:
                    self._held_change = change
                    break
                landed_at_time.add((key, cluster_time))
                rows.add(operation, key, cluster_time, document_json(change.get("fullDocument")))
                token_after = stream.resume_token
            if not rows and ended_by is None:
                return BatchResult.nothing_landed(
                    self.name,
                    position.resume_token,
                    remaining_lag=0 if caught_up else None,
                    seconds=time.monotonic() - started,
                )
        except OperationFailure as exc:
            if exc.code in UNRESUMABLE_CODES or "resume" in str(exc).lower():
                return self._restart_copy(con, f"change stream cannot resume: {exc}", started)
            raise
        new_position = replace(position, resume_token=json.dumps(token_after)) if rows else position
        result = self._land(
            con,
            rows,
            position=position,
            new_position=new_position,
            started_at=started_at,
            started=started,
            restart_reason=ended_by and f"the collection saw a {ended_by} event",
        )
        if ended_by is None:
            self._stream_token = new_position.resume_token
        else:
            self.close()
        if not caught_up:
            return replace(result, remaining_lag=None)
        return result

    def _restart_copy(self, con, reason: str, started: float) -> BatchResult:
        log.error(
            "%s: %s. THE COLLECTION WILL BE COPIED AGAIN; documents deleted meanwhile "
            "will land as deletes when the copy ends.",
            self.name,
            reason,
        )
        self.close()
        try:
            con.begin()
            con.execute(
                "insert into raw._resnapshots values (?, ?, ?)", [self.name, utcnow(), reason]
            )
            con.execute("delete from raw._mongo_positions where collection = ?", [self.name])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return BatchResult.nothing_landed(
            self.name,
            None,
            remaining_lag=None,
            seconds=time.monotonic() - started,
            note=f"re-snapshot: {reason}",
        )

    def _land(
        self,
        con: duckdb.DuckDBPyConnection,
        rows: ChangeRows,
        *,
        position: MongoPosition,
        new_position: MongoPosition,
        started_at: datetime,
        started: float,
        finish_copy: bool = False,
        restart_reason: str | None = None,
    ) -> BatchResult:
        """Land `rows` and move to `new_position` in one transaction (or, with `restart_reason`,
        forget the position so the next batch copies the collection again)."""
        nbytes = sum(len(d) for d in rows.documents if d is not None)
        try:
            con.begin()
            batch_id = next_batch_id(con)
            landed_at = utcnow()
            n = len(rows)
            if n:
                table = pa.table(
                    {
                        "batch_id": pa.array([batch_id] * n, pa.int64()),
                        "landed_at": pa.array([landed_at] * n, pa.timestamp("us")),
                        "operation": pa.array(rows.operations, pa.string()),
                        "document_key": pa.array(rows.keys, pa.string()),
                        "cluster_time": pa.array(rows.cluster_times, pa.int64()),
                        "cluster_at": pa.array(
                            [cluster_time_at(t) for t in rows.cluster_times], pa.timestamp("us")
                        ),
                        "document": pa.array(rows.documents, pa.string()),
                    }
                )
                con.register("landing_rows", table)
                con.execute(f"insert into raw.{self.name} by name select * from landing_rows")
                con.unregister("landing_rows")
            deletes = 0
            if finish_copy:
                deletes = self._land_deletes_missing_from_copy(
                    con, batch_id, landed_at, new_position
                )
            if restart_reason:
                log.error("%s: %s; the collection will be copied again", self.name, restart_reason)
                con.execute(
                    "insert into raw._resnapshots values (?, ?, ?)",
                    [self.name, landed_at, restart_reason],
                )
                con.execute("delete from raw._mongo_positions where collection = ?", [self.name])
            else:
                self._save_position(con, new_position, batch_id)
            result = BatchResult(
                source=self.name,
                batch_id=batch_id,
                records=n + deletes,
                quarantined=0,
                bytes=nbytes,
                position_before=_describe(position),
                position_after=_describe(new_position),
                remaining_lag=0,
                seconds=0.0,  # set once committed
            )
            record_batch(con, result, started_at)
            con.commit()
        except BaseException:
            try:
                con.rollback()
            except duckdb.Error:
                pass
            self.close()
            raise
        return replace(result, seconds=time.monotonic() - started)

    def _land_deletes_missing_from_copy(self, con, batch_id, landed_at, position) -> int:
        """After a copy: documents the warehouse holds as live but the copy did not see are gone."""
        stamp = position.stream_start_cluster_time
        missing = con.execute(
            f"""
            select document_key from (
                select document_key, operation, cluster_time from raw.{self.name}
                qualify row_number() over (
                    partition by document_key order by cluster_time desc, batch_id desc) = 1
            ) as latest
            where operation <> 'delete' and cluster_time < ?
            """,
            [stamp],
        ).fetchall()
        if missing:
            log.error(
                "%s: %d documents disappeared while the change stream was broken; "
                "landing them as deletes",
                self.name,
                len(missing),
            )
            con.executemany(
                f"insert into raw.{self.name} values (?, ?, 'delete', ?, ?, ?, null)",
                [[batch_id, landed_at, key, stamp, cluster_time_at(stamp)] for (key,) in missing],
            )
        return len(missing)


def _describe(position: MongoPosition | None) -> str | None:
    if position is None:
        return None
    if not position.snapshot_done:
        return f"copy after {position.snapshot_after_id or 'start'}"
    return position.resume_token
