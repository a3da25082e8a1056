"""The audience publisher never skips a change: a gap in the serving copy's sequence waits.

The topic's position is the greatest sequence it holds, so a change published after a gap
would make the changes in the gap unpublishable for good (the copy of a deleted customer's
history lost them once: tests/test_serving_audience_history.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from customer360.audiences.publisher import (
    AudiencePublisher,
    SequenceGap,
    following_on,
)


class RecordingProducer:
    """Stands in for the transactional Kafka producer: keeps what a committed round sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self._open: list[bytes] = []

    def begin_transaction(self) -> None:
        self._open = []

    def produce(self, topic, key, value, headers) -> None:
        self._open.append(value)

    def poll(self, timeout) -> None:
        pass

    def flush(self, timeout) -> None:
        pass

    def commit_transaction(self, timeout) -> None:
        self.sent += self._open


def serving_copy(path: Path, sequences: list[int]) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create table audience_changes (sequence bigint, audience varchar,"
            " customer_id bigint, change varchar, changed_at timestamp)"
        )
        for sequence in sequences:
            con.execute(
                "insert into audience_changes values (?, 'lapsed', ?, 'entered', ?)",
                [sequence, sequence, dt.datetime(2026, 6, 1)],
            )
    return path


def publisher_reading(source: Path, last_sequence: int) -> AudiencePublisher:
    publisher = AudiencePublisher.__new__(AudiencePublisher)  # no Kafka: position given
    publisher.source = source
    publisher.topic = "audience_changes"
    publisher.producer = RecordingProducer()
    publisher.last_sequence = last_sequence
    return publisher


@pytest.mark.parametrize(
    ("sequences", "last", "kept"),
    [([1, 2, 3], 0, [1, 2, 3]), ([1, 2, 4], 0, [1, 2]), ([3, 4], 1, []), ([], 5, [])],
)
def test_following_on_keeps_the_changes_up_to_a_gap(sequences, last, kept) -> None:
    rows = [(s, "lapsed", s) for s in sequences]
    assert [row[0] for row in following_on(rows, last)] == kept


def test_a_gap_is_not_skipped(tmp_path) -> None:
    publisher = publisher_reading(serving_copy(tmp_path / "serving.duckdb", [1, 2, 4]), 0)

    assert publisher.publish_round().published == 2
    with pytest.raises(SequenceGap, match="no audience change 3"):
        publisher.publish_round()
    assert publisher.last_sequence == 2
    assert len(publisher.producer.sent) == 2
