"""A partition the broker truncated and wrote again (extractors/kafka_source.py), without a
broker: the records below the next offset that carry a later leader epoch than the last one
landed are new records, landed with a quarantine row saying so; a re-delivery is still skipped.
The same with a real broker whose log is truncated: tests/test_kafka_truncated_log.py."""

from __future__ import annotations

import json
from pathlib import Path

from customer360.config import Settings
from extractors.kafka_source import KafkaSource, PolledRecords, log_rewritten
from extractors.warehouse import connect_warehouse


class FakeMessage:
    def __init__(self, offset: int, epoch: int | None, value: dict):
        self._offset, self._epoch, self._value = offset, epoch, json.dumps(value).encode()

    def error(self):
        return None

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def leader_epoch(self) -> int | None:
        return self._epoch

    def key(self):
        return None

    def value(self) -> bytes:
        return self._value

    def timestamp(self):
        return (0, -1)


class FakeConsumer:
    def __init__(self, messages: list[FakeMessage]):
        self.messages = messages

    def consume(self, wanted: int, timeout: float) -> list[FakeMessage]:
        out, self.messages = self.messages, []
        return out


def weblog(n: int) -> dict:
    return {"event_id": f"e{n}", "user_id": 1, "date": "2026-12-06T10:00:00+00:00"}


def poll(tmp_path: Path, messages: list[FakeMessage], epochs: dict[int, int]) -> PolledRecords:
    source = KafkaSource(Settings(home=tmp_path), "weblogs")
    source._consumer_ = lambda: FakeConsumer(messages)
    polled = PolledRecords(
        next_offsets={0: 10}, epochs=dict(epochs), epochs_before=dict(epochs), start={0: 10}
    )
    # read up to the last message given (the partition's end)
    source._poll(polled, {0: messages[-1].offset() + 1}, max_records=100, deadline=float("inf"))
    return polled


def test_a_later_epoch_below_the_next_offset_is_a_log_written_again() -> None:
    assert log_rewritten(0, 2)
    assert not log_rewritten(2, 2)  # the same epoch: a re-delivery
    assert not log_rewritten(3, 2)
    assert not log_rewritten(None, 2)  # stored before epochs were kept: nothing to tell by
    assert not log_rewritten(0, None)


def test_the_records_written_again_are_landed_and_said(tmp_path: Path) -> None:
    # Landed up to offset 9 in epoch 0; the broker truncated at 6 and took 6..13 in epoch 2.
    messages = [FakeMessage(n, 2, weblog(100 + n)) for n in range(6, 14)]
    polled = poll(tmp_path, messages, {0: 0})
    assert polled.rows["offset"] == list(range(6, 14))
    assert polled.next_offsets == {0: 14} and polled.epochs == {0: 2}
    [(topic, partition, offset, key, value, reason)] = polled.quarantined
    assert (partition, offset, key, value) == (0, 6, None, None)
    assert reason == (
        "partition truncated by the broker and written again: offsets 6..9 were landed from "
        "leader epoch 0 and now hold other records (epoch 2), landed from offset 6 on; the "
        "earlier ones stay"
    )


def test_records_written_again_are_landed_after_later_ones(tmp_path: Path) -> None:
    """Read from the stored offset first (10..13, epoch 2), then from where the log was cut
    (6..9, epoch 2, then 10..13 again): 6..9 are new records, below the batch's start, where the
    last record landed was of epoch 0; 10..13 were read in this batch already."""
    messages = [FakeMessage(n, 2, weblog(100 + n)) for n in [*range(10, 14), *range(6, 14)]]
    polled = poll(tmp_path, messages, {0: 0})
    assert polled.rows["offset"] == [10, 11, 12, 13, 6, 7, 8, 9]
    assert [row[2] for row in polled.quarantined] == [6]
    assert polled.next_offsets == {0: 14}


def test_a_record_delivered_again_is_skipped(tmp_path: Path) -> None:
    messages = [FakeMessage(9, 0, weblog(9)), FakeMessage(10, 0, weblog(10))]
    polled = poll(tmp_path, messages, {0: 0})
    assert polled.rows["offset"] == [10] and polled.quarantined == []
    # without a stored epoch, as before epochs were kept
    messages = [FakeMessage(9, 2, weblog(9)), FakeMessage(10, 2, weblog(10))]
    polled = poll(tmp_path, messages, {})
    assert polled.rows["offset"] == [10] and polled.quarantined == []
    assert polled.epochs == {0: 2}  # known from now on


def test_the_stored_epoch_goes_with_a_position_read_on_from_only(tmp_path: Path) -> None:
    con = connect_warehouse(tmp_path / "warehouse.duckdb")
    con.execute(
        'insert into raw._kafka_offsets (topic, "partition", next_offset, batch_id, updated_at,'
        " topic_id, leader_epoch) values ('weblogs', 0, 5, 1, now(), 'A', 3),"
        " ('weblogs', 1, 9, 1, now(), 'A', 4)"
    )
    source = KafkaSource(Settings(home=tmp_path), "weblogs")
    source._topic_id = "A"
    stored = source.stored_positions(con)
    assert (stored.offsets, stored.epochs, stored.topic_id) == ({0: 5, 1: 9}, {0: 3, 1: 4}, "A")
    # partition 1's offset 9 is beyond its end 7: read again from its start, in no known epoch
    polled, _ = source._plan(stored, {0: (0, 8), 1: (0, 7)})
    assert polled.next_offsets == {0: 5, 1: 0}
    assert polled.epochs == {0: 3}
    assert source._position(0, polled.next_offsets, polled.epochs).leader_epoch == 3
    assert source._position(1, polled.next_offsets, polled.epochs).leader_epoch is None
