"""Where generated records go: a batching Kafka producer and a background Mongo bulk writer."""

from __future__ import annotations

import json
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from pymongo import InsertOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from customer360.config import Settings

try:  # orjson comes with dagster; it is 5-10 times faster than json for our records
    import orjson

    def to_json(record: dict[str, Any]) -> bytes:
        return orjson.dumps(record)

except ImportError:  # pragma: no cover

    def to_json(record: dict[str, Any]) -> bytes:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


class KafkaOutput:
    """A confluent-kafka Producer tuned for throughput that counts what failed to deliver.

    `on_delivered(message_or_none, error_or_none, opaque)` is called for every record that was
    produced with an `opaque` (used by `stream --log`); records produced without one are only
    counted.
    """

    def __init__(
        self,
        settings: Settings,
        linger_ms: int = 50,
        report_only_errors: bool = False,
        on_delivered: Callable[[Message, KafkaError | None, Any], None] | None = None,
    ):
        self.bootstrap = settings.kafka_bootstrap
        self.producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "linger.ms": linger_ms,
                "batch.num.messages": 10_000,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500_000,
                "queue.buffering.max.kbytes": 512 * 1024,
                "enable.idempotence": True,
                "acks": "all",
                # With it, delivery callbacks run only for failures: far less Python per record.
                "delivery.report.only.error": report_only_errors,
            }
        )
        self.on_delivered = on_delivered
        self.produced = 0
        self.delivered = 0
        self.failed = 0
        self.last_error: KafkaError | None = None

    def _delivery(self, opaque: Any) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            self._count(error)
            if self.on_delivered is not None:
                self.on_delivered(message, error, opaque)

        return report

    def _count(self, error: KafkaError | None, message: Message | None = None) -> None:
        if error is None:  # (not called for successes with `report_only_errors`)
            self.delivered += 1
        else:
            self.failed += 1
            self.last_error = error

    def produce(self, topic: str, key: str | None, value: bytes, opaque: Any = None) -> None:
        callback = self._count if opaque is None else self._delivery(opaque)
        while True:
            try:
                self.producer.produce(
                    topic,
                    value=value,
                    key=None if key is None else key.encode(),
                    on_delivery=callback,
                )
                break
            except BufferError:  # the local queue is full: let librdkafka send some
                self.producer.poll(0.05)
        self.produced += 1
        if self.produced % 5_000 == 0:
            self.producer.poll(0)

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every record is delivered; raise if some could not be."""
        remaining = self.producer.flush(timeout_s)
        if remaining:
            raise RuntimeError(
                f"{remaining} records were not delivered to Kafka at {self.bootstrap} within "
                f"{timeout_s:.0f} s; is it running?"
            )
        if self.failed:
            raise RuntimeError(
                f"{self.failed} of {self.produced} records failed to reach Kafka at "
                f"{self.bootstrap}: {self.last_error}"
            )


class MongoBulkWriter:
    """Buffers documents per collection and inserts them in chunks from a background thread.

    Generation keeps going while the previous chunk is written; at most `max_in_flight` chunks
    wait, so memory stays bounded.
    """

    def __init__(self, db: Database, chunk_size: int = 5_000, max_in_flight: int = 2):
        self.db = db
        self.chunk_size = chunk_size
        self.max_in_flight = max_in_flight
        self.buffers: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mongo-writer")
        self.in_flight: list[Future] = []
        self.inserted: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def add(self, collection: str, document: dict[str, Any]) -> None:
        buffer = self.buffers[collection]
        buffer.append(document)
        if len(buffer) >= self.chunk_size:
            self._submit(collection)

    def _submit(self, collection: str) -> None:
        documents = self.buffers.pop(collection, [])
        if not documents:
            return
        while len(self.in_flight) >= self.max_in_flight:
            self.in_flight.pop(0).result()
        self.in_flight.append(self.pool.submit(self._insert, collection, documents))

    def _insert(self, collection: str, documents: list[dict[str, Any]]) -> None:
        self.db[collection].insert_many(documents, ordered=False)
        with self.lock:
            self.inserted[collection] += len(documents)

    def flush(self) -> None:
        for collection in list(self.buffers):
            self._submit(collection)
        while self.in_flight:
            self.in_flight.pop(0).result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.pool.shutdown(wait=True)


DUPLICATE_KEY = 11000  # MongoDB's error code


class MongoOpsWriter:
    """Applies batches of write operations to Mongo in order, from one background thread.

    Each batch is one `bulk_write(ordered=True)` on one collection, so a stream's pacing does not
    wait for Mongo round trips. At most `max_batches` wait; beyond that `submit` blocks (Mongo
    sets the pace). After a failure the writer stops writing and `submit`/`close` raise it.
    """

    def __init__(
        self,
        db: Database,
        on_written: Callable[[list[Any]], None] | None = None,
        max_batches: int = 200,
    ):
        self.db = db
        self.on_written = on_written
        self.batches: queue.Queue = queue.Queue(maxsize=max_batches)
        self.error: BaseException | None = None
        self.written = 0
        self.thread = threading.Thread(target=self._run, name="mongo-ops", daemon=True)
        self.thread.start()

    def submit(self, collection: str, operations: list[Any], entries: list[Any]) -> None:
        self._raise_error()
        self.batches.put((collection, operations, entries))

    def _run(self) -> None:
        while True:
            batch = self.batches.get()
            if batch is None:
                return
            collection, operations, entries = batch
            if self.error is not None:
                continue
            try:
                self._write(collection, operations)
                self.written += len(operations)
                if self.on_written is not None:
                    self.on_written(entries)
            except Exception as error:  # noqa: BLE001 - reported to the producing thread
                self.error = error

    def _write(self, collection: str, operations: list[Any]) -> None:
        """One ordered bulk write. An insert that comes back as a duplicate of its own `_id`
        was written by an earlier attempt: pymongo retries a write once after a network error
        (a MongoDB restart), and a server that does not recognise the retry reports the first
        attempt's document as a duplicate (seen with SecantusDB in `c360 chaos`, 2026-12-04; the
        generator's ids are new ObjectIds, never reused). It counts as written; the operations
        after it follow."""
        while operations:
            try:
                self.db[collection].bulk_write(operations, ordered=True)
                return
            except BulkWriteError as error:
                first = (error.details.get("writeErrors") or [{}])[0]
                index = first.get("index")
                if (
                    index is None
                    or first.get("code") != DUPLICATE_KEY
                    or not isinstance(operations[index], InsertOne)
                ):
                    raise
                operations = operations[index + 1 :]

    def _raise_error(self) -> None:
        if self.error is not None:
            raise RuntimeError(
                f"writing to MongoDB ({self.db.name}) failed: {self.error}"
            ) from self.error

    def close(self) -> None:
        """Wait until every batch is written; raise if one failed."""
        if self.thread.is_alive():
            self.batches.put(None)
            self.thread.join()
        self._raise_error()
