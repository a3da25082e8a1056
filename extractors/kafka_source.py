"""Kafka -> raw landing table, exactly once.

The consumer is assigned partitions explicitly (no group rebalancing) and seeks to the offsets
stored in the warehouse; the rows, the quarantined records and the next offsets are written in one
DuckDB transaction. A crash before the commit lands nothing and moves nothing, so the next batch
reads the same records again; a crash after it finds the new offsets. Kafka's own committed
offsets are written afterwards only so that lag shows in Kafka tooling.

The offsets are stored with the topic's id (Kafka 2.8+): a topic deleted and created again under
the same name has new records at the old offsets, and only its id tells. A position that cannot
be read on from (deleted by retention, beyond the partition's end, or the old topic's) is
recorded in raw.quarantine with the reason, and reading goes on from the low watermark.

So is the leader epoch of the last record read (KIP-320): a broker that lost records it had
acknowledged and took others at their offsets (a truncated log written again, under a later
epoch) no longer makes the consumer read on from the stored offset and skip the new records
before it. Given the epoch, librdkafka finds where the log was truncated and reads from there;
the records it gives below the stored offset carry a later epoch than the last one landed, are
landed, and a quarantine row says what happened.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime

import duckdb
import pyarrow as pa
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from customer360.config import Settings
from extractors.batch import BatchResult
from extractors.warehouse import next_batch_id, record_batch, utcnow

log = logging.getLogger(__name__)

# Fields a record must carry to be landed; anything else about its shape is dbt's business.
REQUIRED_FIELDS = {
    "weblogs": ("event_id", "date"),
    "marketing_emails": ("email_id", "user_id", "date", "updated_at"),
}
# Fields of which a record must carry at least one: an anonymous visitor's weblog event has an
# `anonymous_id` (the browser's cookie) and no `user_id` until the visitor logs in.
REQUIRED_ONE_OF = {
    "weblogs": ("user_id", "anonymous_id"),
    "marketing_emails": (),
}
CONSUMER_GROUP = "c360-extractor"
METADATA_REFRESH_S = 10.0
# How long watermarks from the fetch stream are trusted before asking the broker again; the ask
# is what notices a broker that went away while nothing was pending.
WATERMARKS_VERIFY_S = 1.0
BROKER_TIMEOUT_S = 10.0
# librdkafka's consumer close can block for good while the broker is down (an offset commit in
# flight: confluent-kafka-python #1667); a close taking longer is left to finish on its own.
CLOSE_TIMEOUT_S = 5.0
# The id Kafka gives when it has none (a broker before 2.8): as good as no id.
NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"


class KafkaExtractError(RuntimeError):
    """Kafka could not be read; nothing of the batch was landed."""


class NotStrictJson(ValueError):
    """Text Python's JSON parser accepts but DuckDB's (staging's) reads differently or not."""


def _reject_constant(name: str) -> None:
    # DuckDB reads NaN and Infinity as numbers, Python as floats, other readers not at all: not
    # JSON (RFC 8259), so a record carrying one is quarantined rather than left to each reader.
    raise NotStrictJson(f"{name} is not a JSON value")


def _object_without_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    # Python keeps a repeated key's last value, DuckDB its first: the extractor's check and
    # staging would read different records (an event_id present for one, missing for the other).
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _value in pairs if key in seen or seen.add(key))
        raise NotStrictJson(f"key {repeated!r} appears more than once in an object")
    return record


# ~1.5 us a record more than json.loads (the hook runs in Python for every object).
_STRICT_JSON = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicate_keys, parse_constant=_reject_constant
)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(parsed: object) -> bool:
    """Whether a string (key or value) in `parsed` holds half a surrogate pair: Python decodes a
    lone `\\ud800` escape into one, DuckDB calls the whole text malformed JSON and its JSON
    functions raise in staging. A loop, not recursion: the parser accepts ~1,000 levels of
    nesting, more than a recursive walk could."""
    pending = [parsed]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def quarantine_reason(source: str, value: bytes | None) -> str | None:
    """Why a record cannot be landed as data, or None when it can."""
    if value is None:
        return "empty message (no value)"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"value is not UTF-8 text: {exc}"
    try:
        record = _STRICT_JSON.decode(text)
    except (json.JSONDecodeError, NotStrictJson) as exc:
        return f"invalid JSON: {exc}"
    except RecursionError:
        # Python's parser gives up past ~1,000 levels of nesting (a 2 KB value can do it);
        # raised, it failed the batch, and every batch after it, on the same record.
        return "JSON nested too deeply to check (over ~1,000 levels)"
    # Only a \u escape can make a lone surrogate: the text search skips the walk for the others.
    if "\\u" in text and _has_lone_surrogate(record):
        return "invalid JSON: a \\u escape is half of a UTF-16 surrogate pair (DuckDB rejects it)"
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    missing = [f for f in REQUIRED_FIELDS[source] if record.get(f) is None]
    if missing:
        return "missing required field(s): " + ", ".join(missing)
    # Absent or null only, like the required fields: a record with an empty or ill-typed id is
    # landed and rejected by staging with the reason (as a record with a bad user_id always was).
    one_of = REQUIRED_ONE_OF[source]
    if one_of and all(record.get(f) is None for f in one_of):
        return "missing required field: one of " + " or ".join(one_of)
    return None


# How long a seek to a just-assigned partition is asked again (_seek_with_epoch).
SEEK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LostPosition:
    """A stored position reading cannot go on from, and why: logged as an error and written to
    raw.quarantine (offset `stored`, no key or value), since nothing is dropped without a row."""

    partition: int
    stored: int
    reason: str


def _start_offsets(
    stored: dict[int, int], marks: dict[int, tuple[int, int]]
) -> tuple[dict[int, int], list[LostPosition]]:
    """Where to read each partition from: the stored offset, or the low watermark for a new
    partition; and the stored positions that cannot be read on from, where reading restarts at
    the low watermark: records retention deleted before they were landed, or an offset beyond
    the partition's end (the topic recreated, or a broker that lost records it had acknowledged:
    the offsets will be used again by other records)."""
    start: dict[int, int] = {}
    lost = []
    for p, (low, high) in marks.items():
        position = stored.get(p, low)
        if position < low:
            reason = (
                f"offsets {position}..{low - 1} deleted by Kafka retention before they were landed"
            )
            lost.append(LostPosition(p, position, reason))
            position = low
        elif position > high:
            reason = (
                f"stored offset {position} beyond the end {high}: topic recreated or truncated; "
                f"reading again from {low}"
            )
            lost.append(LostPosition(p, position, reason))
            position = low
        start[p] = position
    return start, lost


def _restart_recreated_topic(
    stored: dict[int, int],
    marks: dict[int, tuple[int, int]],
    stored_id: str,
    topic_id: str,
) -> tuple[dict[int, int], list[LostPosition]]:
    """Every partition of a topic recreated under the same name read from its low watermark: the
    stored offsets were the old topic's, whose records from there on (if any) are gone with it."""
    start = {p: low for p, (low, _high) in marks.items()}
    lost = []
    for p, position in sorted(stored.items()):
        again = f"reading again from {start[p]}" if p in start else "no such partition now"
        reason = (
            f"topic recreated (id {stored_id} is now {topic_id}): stored offset {position} "
            f"was the old topic's; {again}"
        )
        lost.append(LostPosition(p, position, reason))
    return start, lost


@dataclass(frozen=True)
class StoredPositions:
    """A topic's positions as the warehouse holds them (raw._kafka_offsets), read at once."""

    offsets: dict[int, int]  # the next offset of each partition
    # The leader epoch of the last record landed from each partition, where known.
    epochs: dict[int, int]
    # The id of the topic they are positions in; None when unknown (stored before ids were
    # kept: the current topic's id is adopted, nothing is read again).
    topic_id: str | None


@dataclass
class PolledRecords:
    """What one micro-batch read: rows to land (as columns), records to quarantine, and the
    next offset of each partition."""

    next_offsets: dict[int, int]
    # The id of the topic the records were read from, stored with the offsets (None: unknown).
    topic_id: str | None = None
    # A recreated topic's batch: the old topic's partitions go (the new one may have fewer).
    forget_stored_offsets: bool = False
    # The leader epoch of the last record read from each partition (stored with its offset),
    # and of the last one landed before this batch, below its start offset (`start`).
    epochs: dict[int, int] = field(default_factory=dict)
    epochs_before: dict[int, int] = field(default_factory=dict)
    start: dict[int, int] = field(default_factory=dict)
    # The epoch of the records written again that this batch found, per partition (one
    # quarantine row each).
    rewritten: dict[int, int] = field(default_factory=dict)
    rows: dict[str, list] = field(
        default_factory=lambda: {
            k: [] for k in ("partition", "offset", "key", "timestamp", "value")
        }
    )
    quarantined: list[tuple] = field(default_factory=list)
    count: int = 0  # records read, landed or quarantined
    bytes: int = 0

    def epoch_landed_at(self, p: int, offset: int) -> int | None:
        """The latest leader epoch a record landed at `offset` can have: the last one landed
        before this batch below its start, else the last one read in it."""
        if offset < self.start.get(p, 0):
            return self.epochs_before.get(p)
        return self.epochs.get(p)

    def remaining(self, targets: dict[int, int]) -> int:
        """Records still before the targets (the high watermarks seen at the start)."""
        return sum(max(0, high - self.next_offsets[p]) for p, high in targets.items())

    def arrow_table(self, batch_id: int, landed_at: datetime, topic: str) -> pa.Table:
        """The rows in the raw table's columns (see landing_schema.py)."""
        n = len(self.rows["offset"])
        return pa.table(
            {
                "batch_id": pa.array([batch_id] * n, pa.int64()),
                "landed_at": pa.array([landed_at] * n, pa.timestamp("us")),
                "topic": pa.array([topic] * n, pa.string()),
                "partition": pa.array(self.rows["partition"], pa.int32()),
                "offset": pa.array(self.rows["offset"], pa.int64()),
                "key": pa.array(self.rows["key"], pa.string()),
                # Kafka's milliseconds since the epoch, UTC, as a naive timestamp (None: none).
                "timestamp": pa.array(self.rows["timestamp"], pa.int64())
                .cast(pa.timestamp("ms"))
                .cast(pa.timestamp("us")),
                "value": pa.array(self.rows["value"], pa.string()),
            }
        )


class KafkaSource:
    """One Kafka-fed source, kept warm between micro-batches."""

    def __init__(self, settings: Settings, name: str):
        self.name = name
        self.topic = settings.topic(name)
        self.settings = settings
        self._consumer: Consumer | None = None
        self._admin: AdminClient | None = None
        self._partitions: list[int] = []
        # The topic's id as of the last metadata refresh (None: missing, or the broker has none).
        self._topic_id: str | None = None
        self._warned_topic_missing = False
        self._partitions_checked = 0.0
        self._watermarks_verified = 0.0
        # Where the consumer will read next, per partition; None when it must seek first.
        self._positions: dict[int, int] | None = None

    # -- connection -----------------------------------------------------------------------
    def _consumer_(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    "bootstrap.servers": self.settings.kafka_bootstrap,
                    "group.id": CONSUMER_GROUP,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    # "end of partition at offset N": the offsets before N that no record came
                    # for are a transactional producer's commit/abort markers or aborted records,
                    # which a consumer never receives (see _poll).
                    "enable.partition.eof": True,
                    "fetch.wait.max.ms": 50,
                    "fetch.max.bytes": 16 * 1024 * 1024,
                    "max.partition.fetch.bytes": 4 * 1024 * 1024,
                    "queued.max.messages.kbytes": 65536,
                    "socket.timeout.ms": int(BROKER_TIMEOUT_S * 1000),
                    "log_level": 3,
                }
            )
        return self._consumer

    def _admin_(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(
                {"bootstrap.servers": self.settings.kafka_bootstrap, "log_level": 3}
            )
        return self._admin

    def close(self) -> None:
        self._admin = None
        consumer, self._consumer = self._consumer, None
        self._positions = None
        if consumer is None:
            return
        closing = threading.Thread(
            target=_close_quietly, args=(consumer, self.topic), name=f"close-{self.topic}",
            daemon=True,
        )  # fmt: skip
        closing.start()
        closing.join(CLOSE_TIMEOUT_S)
        if closing.is_alive():
            log.warning(
                "closing the Kafka consumer of %s took over %.0f s (is the broker down?): left "
                "to finish in the background; the next batch uses a new consumer",
                self.topic, CLOSE_TIMEOUT_S,
            )  # fmt: skip

    def _current_partitions(self) -> list[int]:
        now = time.monotonic()
        if not self._partitions or now - self._partitions_checked > METADATA_REFRESH_S:
            try:
                metadata = self._consumer_().list_topics(self.topic, timeout=BROKER_TIMEOUT_S)
            except Exception as exc:
                raise self._unanswered("a metadata request", exc) from exc
            topic = metadata.topics.get(self.topic)
            if topic is None or topic.error is not None:
                self._partitions = []
                self._topic_id = None
            else:
                found = sorted(topic.partitions)
                new = set(found) - set(self._partitions)
                if self._partitions and new:
                    log.info("%s: new partitions %s picked up", self.topic, sorted(new))
                    self._positions = None
                self._partitions = found
                self._refresh_topic_id()
            self._partitions_checked = now
        return self._partitions

    def _refresh_topic_id(self) -> None:
        topic_id = self._describe_topic_id()
        if self._topic_id is not None and topic_id != self._topic_id:
            self._positions = None  # the consumer's positions were the old topic's
        self._topic_id = topic_id

    def _describe_topic_id(self) -> str | None:
        """The topic's id as the broker has it now; None when the topic is missing or the
        broker gives no ids (before Kafka 2.8)."""
        futures = self._admin_().describe_topics(
            TopicCollection([self.topic]), request_timeout=BROKER_TIMEOUT_S
        )
        try:
            description = futures[self.topic].result(timeout=BROKER_TIMEOUT_S + 1)
        except Exception as exc:
            if _unknown_topic(exc):
                return None
            raise self._unanswered("a topic description", exc) from exc
        topic_id = str(description.topic_id)
        return None if topic_id == NO_TOPIC_ID else topic_id

    def _unanswered(self, request: str, exc: Exception) -> KafkaExtractError:
        return KafkaExtractError(
            f"Kafka at {self.settings.kafka_bootstrap} did not answer {request} for "
            f"{self.topic} within {BROKER_TIMEOUT_S:.0f} s ({exc}); is it running? "
            "`c360 services status`"
        )

    def _topic_missing(self, before: str, started: float) -> BatchResult:
        """A batch of a topic that does not exist: nothing to read, and a lag nobody knows (the
        topic may come back with records, or have gone with some unlanded)."""
        self._partitions = []  # ask for the topic's metadata again next batch
        self._topic_id = None
        self._positions = None
        if not self._warned_topic_missing:
            log.warning(
                "%s: Kafka topic %s does not exist (deleted?); nothing is read until it does",
                self.name, self.topic,
            )  # fmt: skip
            self._warned_topic_missing = True
        return BatchResult.nothing_landed(
            self.name,
            before,
            remaining_lag=None,
            seconds=time.monotonic() - started,
            note=f"topic {self.topic} missing",
        )

    def _watermarks(self, partitions: list[int]) -> dict[int, tuple[int, int]] | None:
        """(low, high) per partition; None when the broker no longer knows the topic (deleted
        since the last metadata refresh)."""
        consumer = self._consumer_()
        marks = {}
        now = time.monotonic()
        trust_cache = self._positions is not None and now - self._watermarks_verified < (
            WATERMARKS_VERIFY_S
        )
        if not trust_cache:
            self._watermarks_verified = now
        for p in partitions:
            tp = TopicPartition(self.topic, p)
            if trust_cache:
                # Assigned partitions are fetched continuously (fetch.wait.max.ms apart), and each
                # fetch reports the high watermark: no round trip for an empty micro-batch.
                low, high = consumer.get_watermark_offsets(tp, cached=True)
                if low >= 0 and high >= 0:
                    marks[p] = (low, high)
                    continue
            try:
                marks[p] = consumer.get_watermark_offsets(
                    tp, timeout=BROKER_TIMEOUT_S, cached=False
                )
            except Exception as exc:
                if _unknown_topic(exc):
                    return None
                raise KafkaExtractError(
                    f"Kafka at {self.settings.kafka_bootstrap} did not give the offsets of "
                    f"{self.topic}[{p}] ({exc}); is it running? `c360 services status`"
                ) from exc
        return marks

    # -- positions ------------------------------------------------------------------------
    def stored_positions(self, con: duckdb.DuckDBPyConnection) -> StoredPositions:
        # fetchall: a result not read to its end keeps its transaction open on this source's
        # cursor until its next statement, and the pipeline's CHECKPOINT after a batch then
        # failed ("other write transactions active"), batch after batch.
        rows = con.execute(
            'select "partition", next_offset, leader_epoch, topic_id from raw._kafka_offsets'
            " where topic = ?",
            [self.topic],
        ).fetchall()
        return StoredPositions(
            offsets={p: offset for p, offset, _, _ in rows},
            epochs={p: epoch for p, _, epoch, _ in rows if epoch is not None},
            topic_id=max((i for *_, i in rows if i is not None), default=None),
        )

    def lag(self, con: duckdb.DuckDBPyConnection) -> int | None:
        """Records waiting in Kafka beyond what the warehouse holds (None: the topic is missing)."""
        partitions = self._current_partitions()
        marks = self._watermarks(partitions) if partitions else None
        if marks is None:
            return None
        stored = self.stored_positions(con).offsets
        return sum(max(0, high - stored.get(p, low)) for p, (low, high) in marks.items())

    # -- one micro-batch ------------------------------------------------------------------
    def extract(
        self, con: duckdb.DuckDBPyConnection, max_records: int, max_seconds: float
    ) -> BatchResult:
        try:
            return self._extract(con, max_records, max_seconds)
        except KafkaExtractError:
            # Start the next batch with a new consumer: after a broker restart the old one can
            # keep stale metadata (unknown partitions) for a long while.
            self.close()
            self._partitions = []
            raise

    def _extract(
        self, con: duckdb.DuckDBPyConnection, max_records: int, max_seconds: float
    ) -> BatchResult:
        """Positions, then polling up to the high watermarks seen now, then one transaction
        landing the rows, the quarantined records and the next offsets."""
        started = time.monotonic()
        started_at = utcnow()
        partitions = self._current_partitions()
        stored = self.stored_positions(con)
        before = _format_positions(stored.offsets)
        marks = self._watermarks(partitions) if partitions else None
        if marks is None:
            return self._topic_missing(before, started)
        self._warned_topic_missing = False
        polled, targets = self._plan(stored, marks)
        self._seek(partitions, polled.next_offsets, polled.epochs)
        if not targets and not polled.quarantined:
            return BatchResult.nothing_landed(
                self.name, before, remaining_lag=0, seconds=time.monotonic() - started
            )

        start = dict(polled.next_offsets)
        try:
            self._poll(polled, targets, max_records, deadline=started + max_seconds)
        except KafkaExtractError:
            self._positions = None
            raise
        except Exception as exc:
            self._positions = None
            raise KafkaExtractError(f"reading {self.topic} from Kafka failed: {exc}") from exc

        if polled.count == 0 and not polled.quarantined and polled.next_offsets == start:
            return BatchResult.nothing_landed(
                self.name,
                before,
                remaining_lag=polled.remaining(targets),
                seconds=time.monotonic() - started,
                note="nothing arrived in time",
            )
        if not self._same_topic_as_planned():
            return BatchResult.nothing_landed(
                self.name,
                before,
                remaining_lag=None,
                seconds=time.monotonic() - started,
                note="topic recreated while it was read: read again next batch",
            )
        try:
            result = self._land(con, polled, before, targets, started_at)
        except BaseException:
            self._positions = None
            raise
        self._positions = polled.next_offsets
        self._commit_to_kafka(polled.next_offsets)
        return replace(result, seconds=time.monotonic() - started)

    def _plan(
        self, stored: StoredPositions, marks: dict[int, tuple[int, int]]
    ) -> tuple[PolledRecords, dict[int, int]]:
        """The batch to poll into, at its start offsets with the lost positions quarantined,
        and the high watermark to read each partition up to."""
        offsets, stored_id = stored.offsets, stored.topic_id
        recreated = stored_id is not None and self._topic_id not in (None, stored_id)
        if recreated:
            start, lost = _restart_recreated_topic(offsets, marks, stored_id, self._topic_id)
        else:
            start, lost = _start_offsets(offsets, marks)
        # Only where reading goes on from the stored offset: a restarted position is new.
        epochs = {p: e for p, e in stored.epochs.items() if offsets.get(p) == start.get(p)}
        polled = PolledRecords(
            next_offsets=dict(start),
            topic_id=self._topic_id,
            forget_stored_offsets=recreated,
            epochs=dict(epochs),
            epochs_before=epochs,
            start=dict(start),
        )
        polled.quarantined.extend(self._lost_position_quarantine(lost))
        targets = {p: high for p, (_low, high) in marks.items() if high > start[p]}
        return polled, targets

    def _same_topic_as_planned(self) -> bool:
        """Whether the topic still has the id the batch was planned with: ids are never used
        again, so then the records read are that topic's. Asked after reading, as the topic may
        have been recreated since the last metadata refresh or while it was read (librdkafka
        follows a recreated topic, from its start)."""
        topic_id = self._describe_topic_id()
        if topic_id == self._topic_id:
            return True
        log.warning(
            "%s: topic %s was recreated (id %s is now %s) while it was read: the batch is "
            "dropped unlanded and the next one starts the new topic over",
            self.name, self.topic, self._topic_id, topic_id,
        )  # fmt: skip
        self._topic_id = topic_id
        self._positions = None
        self._partitions = []  # the new topic's partitions may differ: ask again
        return False

    def _seek(self, partitions: list[int], start: dict[int, int], epochs: dict[int, int]) -> None:
        """Assign the partitions at `start` (with the leader epoch of the record before, where
        known) unless the consumer is there already."""
        if self._positions == start:
            return
        consumer = self._consumer_()
        positions = [self._position(p, start, epochs) for p in partitions]
        consumer.assign(positions)
        # librdkafka checks a position's leader epoch against the broker's (KIP-320) on a seek
        # or when the partition's leader changes, not on an assignment made once it has the
        # topic's metadata (as here, after the watermarks): it then read on from the stored
        # offset of a truncated log written again, and skipped the records below it.
        for position in positions:
            if position.leader_epoch is not None:
                self._seek_with_epoch(consumer, position)
        self._positions = dict(start)

    def _seek_with_epoch(self, consumer: Consumer, position: TopicPartition) -> None:
        """Seek to `position`, whose leader epoch librdkafka then checks. A partition just
        assigned in place of another assignment refuses a seek ("Erroneous state") until
        librdkafka has started it: asked again for up to SEEK_TIMEOUT_S. Whatever it fetched
        meanwhile is dropped by the seek, or read again after it (see _poll)."""
        deadline = time.monotonic() + SEEK_TIMEOUT_S
        while True:
            try:
                consumer.seek(position)
                return
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._STATE or time.monotonic() > deadline:
                    raise KafkaExtractError(
                        f"could not seek {self.topic}[{position.partition}] to offset "
                        f"{position.offset} (leader epoch {position.leader_epoch}): {exc}"
                    ) from exc
            time.sleep(0.02)

    def _position(self, p: int, start: dict[int, int], epochs: dict[int, int]) -> TopicPartition:
        offset = start.get(p, OFFSET_BEGINNING)
        if p in epochs and p in start:
            return TopicPartition(self.topic, p, offset, leader_epoch=epochs[p])
        return TopicPartition(self.topic, p, offset)

    def _lost_position_quarantine(self, lost: list[LostPosition]) -> list[tuple]:
        """A quarantine row (and an error in the log) per position reading cannot go on from."""
        rows = []
        for position in lost:
            log.error("%s[%d]: %s", self.topic, position.partition, position.reason)
            rows.append(
                (self.topic, position.partition, position.stored, None, None, position.reason)
            )
        return rows

    def _poll(
        self, polled: PolledRecords, targets: dict[int, int], max_records: int, deadline: float
    ) -> None:
        """Consume into `polled` until every partition reached its target, `max_records` were
        read or the deadline passed."""
        consumer = self._consumer_()
        next_offsets = polled.next_offsets
        while polled.count < max_records and time.monotonic() < deadline:
            if all(next_offsets[p] >= high for p, high in targets.items()):
                break
            # consume() returns once it has as many messages as asked for, or at the timeout:
            # asking for no more than the offsets still to read returns as soon as they came.
            wanted = min(max_records - polled.count, polled.remaining(targets), 10_000)
            for msg in consumer.consume(wanted, timeout=0.1):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        # Move past what no record comes for: without it the position stayed on a
                        # transaction's marker, and every batch waited its whole time for it.
                        p = msg.partition()
                        if p in next_offsets and msg.offset() > next_offsets[p]:
                            next_offsets[p] = msg.offset()
                        continue
                    raise KafkaExtractError(f"reading {self.topic}: {error}")
                p, offset = msg.partition(), msg.offset()
                epoch = msg.leader_epoch()
                if offset < next_offsets.get(p, 0):
                    landed_epoch = polled.epoch_landed_at(p, offset)
                    if not log_rewritten(landed_epoch, epoch):
                        continue  # already landed (a re-delivery after a seek)
                    if polled.rewritten.get(p) != epoch:
                        polled.rewritten[p] = epoch
                        polled.quarantined.append(
                            self._rewritten_quarantine(p, offset, polled, landed_epoch, epoch)
                        )
                else:
                    next_offsets[p] = offset + 1
                if epoch is not None:
                    polled.epochs[p] = max(epoch, polled.epochs.get(p, epoch))
                polled.count += 1
                value = msg.value()
                key = msg.key()
                key_text = key.decode("utf-8", "replace") if key is not None else None
                polled.bytes += len(value or b"")
                reason = quarantine_reason(self.name, value)
                if reason is not None:
                    polled.quarantined.append((self.topic, p, offset, key_text, value, reason))
                    continue
                polled.rows["partition"].append(p)
                polled.rows["offset"].append(offset)
                polled.rows["key"].append(key_text)
                polled.rows["timestamp"].append(_kafka_millis(msg.timestamp()))
                polled.rows["value"].append(value.decode("utf-8"))

    def _rewritten_quarantine(
        self, p: int, offset: int, polled: PolledRecords, landed_epoch: int, epoch: int
    ) -> tuple:
        """The row (and the error in the log) saying a truncated log was written again."""
        start = polled.start.get(p, 0)
        end = start if offset < start else polled.next_offsets[p]
        reason = (
            f"partition truncated by the broker and written again: offsets {offset}.."
            f"{end - 1} were landed from leader epoch {landed_epoch} and now hold other "
            f"records (epoch {epoch}), landed from offset {offset} on; the earlier ones stay"
        )
        log.error("%s[%d]: %s", self.topic, p, reason)
        return (self.topic, p, offset, None, None, reason)

    def _land(
        self,
        con: duckdb.DuckDBPyConnection,
        polled: PolledRecords,
        before: str,
        targets: dict[int, int],
        started_at: datetime,
    ) -> BatchResult:
        """One transaction: the rows, the quarantined records, the next offsets, the batch."""
        try:
            con.begin()
            batch_id = next_batch_id(con)
            landed_at = utcnow()
            n = len(polled.rows["offset"])
            if n:
                con.register("landing_rows", polled.arrow_table(batch_id, landed_at, self.topic))
                con.execute(f"insert into raw.{self.name} by name select * from landing_rows")
                con.unregister("landing_rows")
            if polled.quarantined:
                con.executemany(
                    "insert into raw.quarantine (batch_id, quarantined_at, source, topic,"
                    ' "partition", "offset", "key", "value", reason)'
                    " values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[batch_id, landed_at, self.name, *q] for q in polled.quarantined],
                )
            self._store_offsets(con, polled, batch_id, landed_at)
            result = BatchResult(
                source=self.name,
                batch_id=batch_id,
                records=n,
                quarantined=len(polled.quarantined),
                bytes=polled.bytes,
                position_before=before,
                position_after=_format_positions(polled.next_offsets),
                remaining_lag=polled.remaining(targets),
                seconds=0.0,  # set once committed
            )
            record_batch(con, result, started_at)
            con.commit()
        except BaseException:
            _rollback(con)
            raise
        return result

    def _store_offsets(
        self,
        con: duckdb.DuckDBPyConnection,
        polled: PolledRecords,
        batch_id: int,
        landed_at: datetime,
    ) -> None:
        if polled.forget_stored_offsets:
            con.execute("delete from raw._kafka_offsets where topic = ?", [self.topic])
        con.executemany(
            "insert or replace into raw._kafka_offsets"
            ' (topic, "partition", next_offset, batch_id, updated_at, topic_id, leader_epoch)'
            " values (?, ?, ?, ?, ?, ?, ?)",
            [
                [self.topic, p, offset, batch_id, landed_at, polled.topic_id, polled.epochs.get(p)]
                for p, offset in polled.next_offsets.items()
            ],
        )

    def _commit_to_kafka(self, next_offsets: dict[int, int]) -> None:
        """Mirror the warehouse's positions into Kafka for lag tooling; never relied upon."""
        try:
            self._consumer_().commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in next_offsets.items()],
                asynchronous=True,
            )
        except Exception as exc:  # noqa: BLE001
            log.debug("could not mirror offsets of %s to Kafka: %s", self.topic, exc)


def log_rewritten(landed_epoch: int | None, epoch: int | None) -> bool:
    """Whether a record below the next offset to read is another one than the record landed
    there: a record keeps the leader epoch it was written under, so one written before the
    last landed record has no later epoch than it; a later epoch means the broker truncated the
    log below that offset and wrote it again. Without both epochs: a re-delivery."""
    return landed_epoch is not None and epoch is not None and epoch > landed_epoch


def _unknown_topic(exc: Exception) -> bool:
    """Whether the broker answered that it has no such topic. librdkafka's own "unknown
    partition" is not taken for it: it also comes while the broker is down (the batch fails, and
    the next one's metadata request tells)."""
    return (
        isinstance(exc, KafkaException) and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    )


def _close_quietly(consumer: Consumer, topic: str) -> None:
    try:
        consumer.close()
    except Exception as exc:  # noqa: BLE001 - closing a broken consumer must not raise
        log.debug("closing the consumer of %s failed: %s", topic, exc)


def _kafka_millis(timestamp: tuple[int, int]) -> int | None:
    """A message's time (milliseconds since the epoch), None when it has none; turned into
    timestamps by the batch, in Arrow: a datetime per record was ~8 % of the Kafka threads' time
    in a 1 M-event catch-up (py-spy)."""
    _kind, millis = timestamp
    if millis is None or millis < 0:
        return None
    return millis


def _format_positions(positions: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.rollback()
    except duckdb.Error:
        pass
