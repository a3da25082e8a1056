"""Kafka positions that cannot be read on from: a topic deleted and created again under its name
(new records at the old offsets), a stored offset beyond a partition's end, a missing topic.
Nothing is skipped without a row in raw.quarantine saying why."""

from __future__ import annotations

import json
import logging
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from customer360.config import Settings
from customer360.kafka_topics import ensure_topics
from extractors import Extractor
from extractors.kafka_source import KafkaExtractError
from tests.extractor_helpers import drain, landed_event_ids, read_only, weblog


def produce_to_partition_0(settings: Settings, count: int) -> list[str]:
    """`count` weblogs at the end of partition 0; their event ids."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    records = [weblog(i) for i in range(count)]
    for record in records:
        producer.produce(settings.topic("weblogs"), value=json.dumps(record), partition=0)
    assert producer.flush(30) == 0
    return [r["event_id"] for r in records]


def delete_topic(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topic = settings.topic("weblogs")
    for future in admin.delete_topics([topic]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"{topic} still listed 30 s after its deletion"
        time.sleep(0.2)


def recreate_topic(settings: Settings) -> None:
    delete_topic(settings)
    deadline = time.monotonic() + 30
    while True:  # the broker may refuse the name while the deletion finishes
        try:
            ensure_topics(settings, names=[settings.topic("weblogs")])
            return
        except RuntimeError:
            assert time.monotonic() < deadline, "the topic could not be created again"
            time.sleep(0.5)


def quarantine_reasons(settings: Settings) -> list[tuple[int, int, str]]:
    with read_only(settings) as con:
        return con.execute(
            'select "partition", "offset", reason from raw.quarantine order by 1, 2'
        ).fetchall()


def stored_topic_ids(settings: Settings) -> set[str | None]:
    with read_only(settings) as con:
        return {i for (i,) in con.execute("select topic_id from raw._kafka_offsets").fetchall()}


def extract_until_landed(extractor: Extractor, event_ids: list[str]) -> None:
    """Batches as the micro-batch runs them: one that fails (librdkafka may not know the new
    topic's partitions yet: "Unknown partition") resets the source, and the next one goes on."""
    for _ in range(50):
        extractor.extract_all(("weblogs",))
        if set(event_ids) <= set(landed_event_ids(extractor.con)):
            return
        time.sleep(0.2)
    raise AssertionError("the records of the recreated topic were not landed")


def test_a_recreated_topic_grown_past_the_stored_offset_is_read_from_its_start(
    isolated_settings,
):
    """Stored next offset 5, the new topic has 8 records: offsets 0..4 were never landed when
    only the offsets were compared. The topic id stored with them tells the topic is new."""
    old = produce_to_partition_0(isolated_settings, 5)
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["weblogs"])
    (old_id,) = stored_topic_ids(isolated_settings)
    assert old_id is not None
    recreate_topic(isolated_settings)
    new = produce_to_partition_0(isolated_settings, 8)
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["weblogs"])
    with read_only(isolated_settings) as con:
        assert sorted(landed_event_ids(con)) == sorted(old + new)
    (new_id,) = stored_topic_ids(isolated_settings)
    assert new_id not in (None, old_id)
    reasons = quarantine_reasons(isolated_settings)
    assert [(p, o) for p, o, _ in reasons] == [(0, 5), (1, 0), (2, 0)]
    assert reasons[0][2] == (
        f"topic recreated (id {old_id} is now {new_id}): stored offset 5 was the old topic's; "
        "reading again from 0"
    )


def test_a_recreated_topic_is_noticed_by_a_running_extractor(isolated_settings):
    """The consumer stays assigned while the topic is recreated, and the topic id seen at the
    last metadata refresh is stale: the id asked after reading tells the records are new."""
    old = produce_to_partition_0(isolated_settings, 5)
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["weblogs"])
        recreate_topic(isolated_settings)
        new = produce_to_partition_0(isolated_settings, 8)
        extract_until_landed(extractor, new)
        drain(extractor, ["weblogs"])
    with read_only(isolated_settings) as con:
        assert sorted(landed_event_ids(con)) == sorted(old + new)
    assert any(
        "topic recreated" in reason for _, _, reason in quarantine_reasons(isolated_settings)
    )


def test_a_stored_offset_beyond_the_end_restarts_at_the_low_watermark(isolated_settings):
    """A warehouse from before topic ids were stored (null: the current id is adopted) cannot
    tell a recreated topic by its id; a stored offset beyond the partition's end still tells."""
    old = produce_to_partition_0(isolated_settings, 5)
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["weblogs"])
    with Extractor(isolated_settings) as extractor:
        extractor.con.execute("update raw._kafka_offsets set topic_id = null")
    recreate_topic(isolated_settings)
    first = produce_to_partition_0(isolated_settings, 3)
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["weblogs"])
    later = produce_to_partition_0(isolated_settings, 4)  # offsets 3..6: past the old 5
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["weblogs"])
    with read_only(isolated_settings) as con:
        assert sorted(landed_event_ids(con)) == sorted(old + first + later)
    assert quarantine_reasons(isolated_settings) == [
        (
            0,
            5,
            "stored offset 5 beyond the end 3: topic recreated or truncated; reading again from 0",
        )
    ]
    assert None not in stored_topic_ids(isolated_settings)  # the new topic's id adopted


def wait_until_reported_unknown(extractor: Extractor) -> None:
    """Watermarks cached from the fetch stream are trusted for up to a second, and the consumer
    may fail a batch on the partitions it knew (a new consumer then asks for the metadata)."""
    deadline = time.monotonic() + 15
    while True:
        assert time.monotonic() < deadline, "a deleted topic still reported caught up"
        try:
            if extractor.extract("weblogs").remaining_lag is None:
                return
        except KafkaExtractError:
            pass
        time.sleep(0.2)


def test_a_missing_topic_has_an_unknown_lag_and_is_warned_about_once(isolated_settings, caplog):
    produce_to_partition_0(isolated_settings, 2)
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["weblogs"])
        delete_topic(isolated_settings)
        with caplog.at_level(logging.WARNING, logger="extractors.kafka_source"):
            wait_until_reported_unknown(extractor)
            later = [extractor.extract("weblogs") for _ in range(3)]
    assert [(r.landed_anything, r.remaining_lag) for r in later] == [(False, None)] * 3
    warnings = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert len(warnings) == 1
