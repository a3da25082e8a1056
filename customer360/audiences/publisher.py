"""Publish every row of `audience_changes` exactly once to the Kafka topic `audience_changes`.

Where it reads: the serving copy (`C360_SERVING_DB`, read-only, opened again each round so it
follows the publications), never the warehouse: the micro-batch, the only writer, does not wait
for it. A publication of the serving copy holds a micro-batch's changes whole, and sequences are
given in commit order, so what a copy holds is always the changes 1..N.

Exactly once, with no position kept anywhere but in Kafka:
- the producer is transactional (`transactional.id` fixed per topic, idempotence on). Each round
  publishes the next changes in one Kafka transaction: produce them, then commit;
- on start, `init_transactions()` fences any earlier instance with the same id and aborts the
  transaction it left open (a publisher killed between produce and commit): consumers reading
  with `isolation.level=read_committed` never see those messages;
- the position is then read from the topic itself: the greatest `sequence` among its committed
  messages (the last committed message of each partition, read back with read_committed).
  Transactions commit in sequence order, so every change up to that sequence is in the topic
  and none after it. Publishing resumes from the next one.
So a crash at any point (before produce, between produce and commit, after commit) neither
loses a change (not committed -> aborted and sent again) nor duplicates one (committed -> the
position read back includes it).

Messages: key `<audience>:<customer_id>` (changes of one customer in one audience stay in
order on one partition), value JSON {sequence, audience, customer_id, change, changed_at}, and
a `sequence` header. Consumers must read with `isolation.level=read_committed`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from customer360.config import Settings
from customer360.kafka_topics import ensure_topics

log = logging.getLogger(__name__)

TOPIC = "audience_changes"
# Changes per Kafka transaction.
BATCH = 5_000
# How far back from a partition's end the position is looked for first (then 4x further).
LOOKBACK = 200
# How often a lasting gap in the serving copy's sequence is logged again.
GAP_REPORT_EVERY_S = 60.0


class SequenceGap(RuntimeError):
    """The serving copy lacks the change that follows the topic's position."""


def following_on(rows: list[tuple], last_sequence: int) -> list[tuple]:
    """The leading `rows` (sorted by sequence, first column) that continue `last_sequence`
    one by one: none if the first does not, and up to a gap if one is further on."""
    following = []
    for row in rows:
        if row[0] != last_sequence + 1 + len(following):
            break
        following.append(row)
    return following


@dataclass
class RoundResult:
    published: int  # changes committed to Kafka this round
    last_sequence: int  # the greatest sequence in the topic after the round


def topic_name(settings: Settings) -> str:
    return settings.topic(TOPIC)


def ensure_topic(settings: Settings, timeout_s: float = 15.0) -> None:
    """Create the topic if it is missing (the source topics' partition count, kept forever)."""
    ensure_topics(settings, timeout_s, names=[topic_name(settings)])


class AudiencePublisher:
    """One publisher of `audience_changes`; make one per process (it fences earlier ones)."""

    def __init__(self, settings: Settings, source: Path | None = None):
        self.settings = settings
        self.source = Path(source) if source is not None else settings.serving_path
        self.topic = topic_name(settings)
        ensure_topic(settings)
        self.producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "transactional.id": f"c360-audience-publisher:{self.topic}",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            }
        )
        # Fences an earlier instance and aborts the transaction it left open.
        self.producer.init_transactions(60)
        self.last_sequence = self.read_position()
        log.info("audience_changes: %s holds changes up to %d", self.topic, self.last_sequence)

    # -- the position, from the topic itself --------------------------------------------------
    def read_position(self) -> int:
        """The greatest `sequence` among the topic's committed messages (0 when none)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"c360-audience-publisher-position:{self.topic}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        try:
            metadata = consumer.list_topics(self.topic, timeout=30)
            partitions = sorted(metadata.topics[self.topic].partitions)
            return max((self._partition_position(consumer, p) for p in partitions), default=0)
        finally:
            consumer.close()

    def _partition_position(self, consumer: Consumer, partition: int) -> int:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), timeout=30, cached=False
        )
        lookback = LOOKBACK
        while True:
            start = max(low, high - lookback)
            found = self._last_sequence_between(consumer, partition, start)
            if found is not None or start == low:
                return found or 0
            lookback *= 4

    def _last_sequence_between(self, consumer: Consumer, partition: int, start: int) -> int | None:
        """The last committed message's sequence from `start` to the partition's end."""
        consumer.assign([TopicPartition(self.topic, partition, start)])
        last = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise KafkaException(message.error())
            last = json.loads(message.value())["sequence"]
        else:
            raise RuntimeError(f"reading {self.topic}[{partition}] back took over 60 s")
        consumer.unassign()
        return last

    # -- publishing ----------------------------------------------------------------------------
    def pending(self, limit: int = BATCH) -> list[tuple]:
        """The next changes after the position, from the source (empty when it has none yet)."""
        if not self.source.exists():
            return []
        try:
            con = duckdb.connect(str(self.source), read_only=True)
        except duckdb.IOException as exc:  # being replaced this instant: next round
            log.debug("audience_changes: %s not readable now: %s", self.source, exc)
            return []
        try:
            return con.execute(
                "select sequence, audience, customer_id, change, changed_at"
                " from audience_changes where sequence > ? order by sequence limit ?",
                [self.last_sequence, limit],
            ).fetchall()
        except duckdb.CatalogException:
            return []  # a copy published before the audiences existed
        finally:
            con.close()

    def publish_round(self, before_commit: Callable[[], None] | None = None) -> RoundResult:
        """Publish the pending changes in one transaction (at most BATCH): those that follow on
        from the topic's position without a gap. Raises SequenceGap when the copy lacks the
        next one (nothing is skipped: the topic's sequence is its position)."""
        pending = self.pending()
        rows = following_on(pending, self.last_sequence)
        if pending and not rows:
            raise SequenceGap(
                f"{self.source} has no audience change {self.last_sequence + 1} (its next is "
                f"{pending[0][0]}), the topic {self.topic} ends at {self.last_sequence}: waiting "
                "for a publication of the serving copy that has it. If none ever does, the copy "
                "and the topic hold two histories (a new warehouse?): publish to a new topic "
                "(C360_KAFKA_TOPIC_PREFIX)"
            )
        if not rows:
            return RoundResult(0, self.last_sequence)
        self.producer.begin_transaction()
        for sequence, audience, customer_id, change, changed_at in rows:
            value = {
                "sequence": sequence,
                "audience": audience,
                "customer_id": customer_id,
                "change": change,
                "changed_at": changed_at.isoformat() + "Z" if changed_at else None,
            }
            self.producer.produce(
                self.topic,
                key=f"{audience}:{customer_id}".encode(),
                value=json.dumps(value).encode(),
                headers=[("sequence", str(sequence).encode())],
            )
            self.producer.poll(0)
        self.producer.flush(60)
        if before_commit is not None:
            before_commit()
        self.producer.commit_transaction(60)
        self.last_sequence = rows[-1][0]
        return RoundResult(len(rows), self.last_sequence)

    def close(self) -> None:
        self.producer.flush(10)


def run(
    settings: Settings,
    source: Path | None = None,
    once: bool = False,
    interval_s: float = 1.0,
    pause_before_commit: Path | None = None,
) -> int:
    """Publish until stopped (or, with `once`, until nothing is pending). Returns changes sent.

    `pause_before_commit` (fault injection, for tests): after producing a round, before
    committing it, write that file and wait forever, so the process can be killed there."""

    def pause() -> None:
        if pause_before_commit is not None:
            pause_before_commit.write_text(str(os.getpid()))
            while True:
                time.sleep(3600)

    publisher: AudiencePublisher | None = None
    sent = 0
    gap_reported_at: float | None = None
    try:
        while True:
            try:
                publisher = publisher or AudiencePublisher(settings, source)
                result = publisher.publish_round(pause)
            except SequenceGap as exc:
                if once:
                    raise
                if (
                    gap_reported_at is None
                    or time.monotonic() - gap_reported_at >= GAP_REPORT_EVERY_S
                ):
                    log.warning("audience_changes: %s", exc)
                    gap_reported_at = time.monotonic()
                time.sleep(interval_s)
                continue
            except (KafkaException, RuntimeError) as exc:
                if once:
                    raise
                # Kafka away (a restart): start again, as a new publisher would (its open
                # transaction aborted, the position read back from the topic).
                log.warning("audience_changes: %s; trying again in 5 s", exc)
                publisher = None
                time.sleep(5)
                continue
            sent += result.published
            if result.published:
                log.info(
                    "audience_changes: %d published, up to %d",
                    result.published,
                    result.last_sequence,
                )
                continue
            if once:
                return sent
            time.sleep(interval_s)
    finally:
        if publisher is not None:
            publisher.close()
