"""Where the Kafka extractor reads each partition from (extractors/kafka_source.py), without a
broker: a stored offset retention deleted, one beyond the partition's end, the offsets of a topic
recreated under its name; and the topic id column a warehouse from before it gains."""

from __future__ import annotations

from pathlib import Path

import duckdb

from customer360.config import Settings
from extractors.kafka_source import (
    KafkaSource,
    LostPosition,
    _restart_recreated_topic,
    _start_offsets,
)
from extractors.warehouse import connect_warehouse


def test_stored_offsets_within_the_partition_are_read_on_from() -> None:
    marks = {0: (0, 10), 1: (3, 3), 2: (4, 9)}
    start, lost = _start_offsets({0: 7, 1: 3}, marks)
    assert start == {0: 7, 1: 3, 2: 4}  # a partition with no stored offset: its low watermark
    assert lost == []


def test_an_offset_retention_deleted_restarts_at_the_low_watermark() -> None:
    start, lost = _start_offsets({0: 2}, {0: (5, 8)})
    assert start == {0: 5}
    assert lost == [
        LostPosition(0, 2, "offsets 2..4 deleted by Kafka retention before they were landed")
    ]


def test_an_offset_beyond_the_end_restarts_at_the_low_watermark() -> None:
    start, lost = _start_offsets({0: 5, 1: 4}, {0: (0, 3), 1: (0, 4)})
    assert start == {0: 0, 1: 4}  # at the end exactly: caught up, nothing lost
    assert lost == [
        LostPosition(
            0,
            5,
            "stored offset 5 beyond the end 3: topic recreated or truncated; reading again from 0",
        )
    ]


def test_a_recreated_topic_restarts_every_partition_at_its_low_watermark() -> None:
    start, lost = _restart_recreated_topic({0: 5, 1: 2, 2: 9}, {0: (0, 8), 1: (0, 0)}, "A", "B")
    assert start == {0: 0, 1: 0}
    assert [(x.partition, x.stored) for x in lost] == [(0, 5), (1, 2), (2, 9)]
    assert lost[0].reason == (
        "topic recreated (id A is now B): stored offset 5 was the old topic's; reading again from 0"
    )
    assert lost[2].reason.endswith("no such partition now")


def create_warehouse_before_topic_ids(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create schema raw; create table raw._kafka_offsets (topic varchar not null,"
            ' "partition" integer not null, next_offset bigint not null, batch_id bigint not null,'
            ' updated_at timestamp not null, primary key (topic, "partition"))'
        )
        con.execute("insert into raw._kafka_offsets values ('weblogs', 0, 5, 1, now())")


def test_a_warehouse_from_before_topic_ids_adopts_the_current_one(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    create_warehouse_before_topic_ids(warehouse)
    con = connect_warehouse(warehouse)
    source = KafkaSource(Settings(home=tmp_path), "weblogs")
    stored = source.stored_positions(con)
    assert (stored.offsets, stored.epochs, stored.topic_id) == ({0: 5}, {}, None)
    source._topic_id = "B"
    polled, targets = source._plan(stored, {0: (0, 8)})
    assert (polled.next_offsets, targets, polled.quarantined) == ({0: 5}, {0: 8}, [])
    assert polled.topic_id == "B" and not polled.forget_stored_offsets


def test_another_stored_topic_id_restarts_the_topic(tmp_path: Path) -> None:
    con = connect_warehouse(tmp_path / "warehouse.duckdb")
    con.execute(
        'insert into raw._kafka_offsets (topic, "partition", next_offset, batch_id,'
        " updated_at, topic_id) values ('weblogs', 0, 5, 1, now(), 'A')"
    )
    source = KafkaSource(Settings(home=tmp_path), "weblogs")
    source._topic_id = "B"
    polled, targets = source._plan(source.stored_positions(con), {0: (0, 8)})
    assert (polled.next_offsets, targets) == ({0: 0}, {0: 8})
    assert polled.topic_id == "B" and polled.forget_stored_offsets
    assert [row[2] for row in polled.quarantined] == [5]  # the old topic's stored offset
