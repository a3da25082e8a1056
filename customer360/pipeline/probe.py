"""The sensor's cheap lag probe: is there anything for a micro-batch to do?

It never opens the warehouse (DuckDB lets one process hold the file, and that is the writer).
It compares the sources with the positions the last micro-batch published
(`microbatch.state_path`): Kafka's high watermarks against the stored next offsets, and for
MongoDB a change stream resumed from the stored token (one `try_next`, a few ms).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition
from pymongo import MongoClient

from customer360.config import KAFKA_TOPICS, MONGO_COLLECTIONS, Settings
from customer360.pipeline.microbatch import read_state
from customer360.stopping import stop_signals_end_exit_quietly

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0
MONGO_COUNT_CAP = 100  # the probe counts at most this many Mongo changes per collection


@dataclass
class Lag:
    """What waits in each source; None for a source whose lag is unknown (never extracted)."""

    sources: dict[str, int | None] = field(default_factory=dict)
    dbt_pending: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    never_published: bool = False

    @property
    def anything_to_do(self) -> bool:
        return (
            self.never_published
            or bool(self.dbt_pending)
            or any(v is None or v > 0 for v in self.sources.values())
        )

    def describe(self) -> str:
        if self.never_published:
            return "no micro-batch has run on this warehouse yet"
        parts = []
        for source, lag in self.sources.items():
            text = "?" if lag is None else (f">={lag}" if lag == MONGO_COUNT_CAP else str(lag))
            parts.append(f"{source} {text}")
        line = "lag: " + ", ".join(parts)
        if self.dbt_pending:
            line += "; dbt owes " + ", ".join(self.dbt_pending)
        if self.errors:
            line += "; probe errors: " + "; ".join(f"{s}: {e}" for s, e in self.errors.items())
        return line


class Prober:
    """Warm connections for probing; one per process and Settings (see `probe_lag`)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._consumer: Consumer | None = None
        self._mongo: MongoClient | None = None

    def _kafka(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    "bootstrap.servers": self.settings.kafka_bootstrap,
                    "group.id": "c360-probe",
                    "enable.auto.commit": False,
                }
            )
        return self._consumer

    def kafka_lag(self, source: str, stored: dict[str, int]) -> int:
        topic = self.settings.topic(source)
        consumer = self._kafka()
        metadata = consumer.list_topics(topic, timeout=PROBE_TIMEOUT_S)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        lag = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=PROBE_TIMEOUT_S
            )
            lag += max(0, high - int(stored.get(str(p), low)))
        return lag

    def mongo_lag(self, collection: str, position: dict) -> int | None:
        if not position.get("snapshot_done"):
            return None  # the initial copy is still going on
        if self._mongo is None:
            self._mongo = MongoClient(
                self.settings.mongo_uri,
                serverSelectionTimeoutMS=int(PROBE_TIMEOUT_S * 1000),
            )
            stop_signals_end_exit_quietly()
        coll = self._mongo[self.settings.mongo_db][collection]
        count = 0
        with coll.watch(
            resume_after=json.loads(position["resume_token"]),
            max_await_time_ms=1,
            batch_size=MONGO_COUNT_CAP,
        ) as stream:
            while count < MONGO_COUNT_CAP and stream.try_next() is not None:
                count += 1
        return count

    def probe(self) -> Lag:
        state = read_state(self.settings)
        if state is None:
            return Lag(never_published=True)
        lag = Lag(dbt_pending=list(state.get("dbt_pending", [])))
        for source in KAFKA_TOPICS:
            try:
                lag.sources[source] = self.kafka_lag(source, state["kafka"].get(source, {}))
            except Exception as exc:  # noqa: BLE001 - an unknown lag asks for a micro-batch
                lag.sources[source] = None
                lag.errors[source] = str(exc)
        for collection in MONGO_COLLECTIONS:
            position = state["mongo"].get(collection)
            if position is None:
                lag.sources[collection] = None
                continue
            try:
                lag.sources[collection] = self.mongo_lag(collection, position)
            except Exception as exc:  # noqa: BLE001
                lag.sources[collection] = None
                lag.errors[collection] = str(exc)
        return lag

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None


_PROBERS: dict[Settings, Prober] = {}
_LOCK = threading.Lock()


def probe_lag(settings: Settings) -> Lag:
    """How far the warehouse is behind the sources, with connections kept warm per process."""
    with _LOCK:
        prober = _PROBERS.get(settings)
        if prober is None:
            prober = _PROBERS[settings] = Prober(settings)
        return prober.probe()


def close_probers() -> None:
    with _LOCK:
        while _PROBERS:
            _, prober = _PROBERS.popitem()
            prober.close()
