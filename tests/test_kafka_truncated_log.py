"""A broker that lost records it had acknowledged and took others at their offsets: the log of a
partition truncated below the stored offset, then grown back past it under a later leader epoch.

Without the leader epoch the extractor read on from its stored offset and never landed the new
records below it; with it (KIP-320) librdkafka finds where the log was truncated and they are
landed, with a row in raw.quarantine saying what happened. The truncation is made as a disk
lost it: Kafka stopped, the partition's segment cut at a record batch, its indexes and producer
snapshots removed and its clean-shutdown marker too, so that Kafka recovers the log on start.
Kafka of its own (the test stops it), on free ports.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from customer360.config import Settings
from customer360.kafka_topics import ensure_topics
from customer360.services.kafka import KafkaService
from customer360.services.processes import free_kafka_port
from extractors import Extractor
from extractors.kafka_source import KafkaExtractError
from tests.conftest import KAFKA_JARS_CACHE
from tests.extractor_helpers import landed_event_ids, weblog

pytestmark = pytest.mark.services


def produce_one_batch_each(settings: Settings, records: list[dict]) -> None:
    """Each record in a record batch of its own, to partition 0: the log can be cut between."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    for record in records:
        producer.produce(settings.topic("weblogs"), value=json.dumps(record), partition=0)
        assert producer.flush(30) == 0


def truncate_partition_0(kafka: KafkaService, settings: Settings, offset: int) -> None:
    """Stop Kafka and cut partition 0 of the weblogs topic before `offset`, as a lost disk
    write would; Kafka recovers the log when it starts again."""
    kafka.stop()
    data = kafka.dir / "data"
    partition = data / f"{settings.topic('weblogs')}-0"
    [segment] = partition.glob("*.log")
    content = segment.read_bytes()
    position = 0
    while position < len(content):  # record batches: base offset (8 bytes), length (4), batch
        base_offset, length = struct.unpack(">qi", content[position : position + 12])
        if base_offset >= offset:
            break
        position += 12 + length
    with segment.open("r+b") as handle:
        handle.truncate(position)
    for stale in [*partition.glob("*.index"), *partition.glob("*.timeindex")]:
        stale.unlink()
    for stale in partition.glob("*.snapshot"):
        stale.unlink()
    (data / ".kafka_cleanshutdown").unlink(missing_ok=True)
    kafka.start()


def extract_until(extractor: Extractor, event_ids: list[str]) -> None:
    """Batches as the micro-batch runs them: one that fails while the broker's metadata settles
    resets the source, and the next one goes on."""
    for _ in range(60):
        try:
            extractor.extract_all(("weblogs",))
        except KafkaExtractError:
            pass
        if set(event_ids) <= set(landed_event_ids(extractor.con)):
            return
        time.sleep(0.5)
    missing = set(event_ids) - set(landed_event_ids(extractor.con))
    raise AssertionError(f"{len(missing)} of the records written again were never landed")


def stored_position(extractor: Extractor) -> tuple[int, int | None]:
    [row] = extractor.con.execute(
        'select next_offset, leader_epoch from raw._kafka_offsets where "partition" = 0'
    ).fetchall()
    return row


def quarantine_reasons(extractor: Extractor) -> list[tuple[int, str]]:
    return extractor.con.execute(
        'select "offset", reason from raw.quarantine where "partition" = 0 order by 1'
    ).fetchall()


def test_records_written_again_below_the_stored_offset_are_landed(tmp_path: Path) -> None:
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_kafka_port()}",
        home=tmp_path,
        warehouse=tmp_path / "warehouse.duckdb",
        kafka_jars=KAFKA_JARS_CACHE,
        kafka_topic_prefix="truncated_",
    )
    kafka = KafkaService(settings)
    kafka.start()
    try:
        ensure_topics(settings, names=[settings.topic("weblogs")])
        first = [weblog(i) for i in range(10)]
        produce_one_batch_each(settings, first)
        extractor = Extractor(settings)
        extract_until(extractor, [r["event_id"] for r in first])
        offset, epoch = stored_position(extractor)
        assert offset == 10 and epoch is not None

        # The stream kept running through the broker's crash: offsets 6..9 lost, 8 new records
        # at 6..13. Its consumer (or the new one a failed batch makes) must land all 8.
        truncate_partition_0(kafka, settings, 6)
        again = [weblog(100 + i) for i in range(8)]
        produce_one_batch_each(settings, again)
        extract_until(extractor, [r["event_id"] for r in again])
        offset, later_epoch = stored_position(extractor)
        assert offset == 14 and later_epoch > epoch
        [(at, reason)] = quarantine_reasons(extractor)
        assert at == 6
        assert reason.startswith(
            "partition truncated by the broker and written again: offsets 6..9 were landed from "
            f"leader epoch {epoch} and now hold other records"
        )
        # The records landed before stay: offsets 6..9 are in raw twice, each a record read.
        assert sorted(landed_event_ids(extractor.con)) == sorted(
            r["event_id"] for r in first + again
        )
        extractor.close()

        # The pipeline restarted after the crash: a new extractor, the stored offset and epoch.
        truncate_partition_0(kafka, settings, 11)
        third = [weblog(200 + i) for i in range(5)]
        produce_one_batch_each(settings, third)
        restarted = Extractor(settings)
        extract_until(restarted, [r["event_id"] for r in third])
        assert stored_position(restarted)[0] == 16
        assert [at for at, _ in quarantine_reasons(restarted)] == [6, 11]
        restarted.close()
    finally:
        kafka.stop()
