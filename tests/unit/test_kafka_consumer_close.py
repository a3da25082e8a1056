"""Closing the extractor's Kafka consumer never holds the batches up (extractors/kafka_source.py):
librdkafka's close can block for good while the broker is down (confluent-kafka-python #1667),
and a micro-batch closes its consumer after a failed extract to start the next one afresh."""

from __future__ import annotations

import threading

from customer360.config import Settings
from extractors import kafka_source
from extractors.kafka_source import KafkaSource


class StuckConsumer:
    """A consumer whose close blocks until released, as with the broker gone."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = threading.Event()

    def close(self) -> None:
        self.release.wait(60)
        self.closed.set()


def test_a_close_that_blocks_is_left_behind_and_the_next_batch_gets_a_new_consumer(
    monkeypatch, tmp_path
) -> None:
    monkeypatch.setattr(kafka_source, "CLOSE_TIMEOUT_S", 0.05)
    source = KafkaSource(Settings(home=tmp_path), "weblogs")
    stuck = StuckConsumer()
    source._consumer = stuck
    source._positions = {0: 12}
    source.close()  # returns although the close goes on
    assert source._consumer is None and source._positions is None
    assert not stuck.closed.is_set()
    stuck.release.set()  # the broker is back: the abandoned close ends on its own
    assert stuck.closed.wait(30)


def test_a_close_that_fails_does_not_raise(tmp_path) -> None:
    class Broken:
        def close(self) -> None:
            raise RuntimeError("KafkaError{code=_TRANSPORT}")

    source = KafkaSource(Settings(home=tmp_path), "weblogs")
    source._consumer = Broken()
    source.close()
    assert source._consumer is None
