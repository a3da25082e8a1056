"""`c360 services`: the launcher starts, reports and stops real Kafka and MongoDB processes."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient

from customer360.config import KAFKA_PARTITIONS, KAFKA_TOPICS
from customer360.kafka_topics import ensure_topics
from customer360.services import services_down, services_status, services_up
from customer360.services.processes import port_in_use
from tests.conftest import make_service_settings

pytestmark = pytest.mark.services  # starts and stops its own services


def test_up_twice_status_and_down(tmp_path):
    settings = make_service_settings(tmp_path / "home")
    try:
        first = services_up(settings)
        assert [s.name for s in first] == ["mongo", "kafka"]
        assert all(s.pid is not None and s.answering for s in first)

        second = services_up(settings)
        assert [s.pid for s in second] == [s.pid for s in first], "up twice must not restart"

        with MongoClient(settings.mongo_uri, serverSelectionTimeoutMS=5000) as client:
            assert client.admin.command("ping")["ok"] == 1.0
        topics = (
            AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
            .list_topics(timeout=10)
            .topics
        )
        for name in KAFKA_TOPICS:
            assert len(topics[name].partitions) == KAFKA_PARTITIONS
    finally:
        stopped = services_down(settings)
    assert stopped == ["kafka", "mongo"]
    assert all(s.pid is None and not s.answering for s in services_status(settings))
    for state in first:
        host, port = state.address.replace("mongodb://", "").split(":")
        assert not port_in_use(host, int(port))
    assert services_down(settings) == [], "down when nothing runs is harmless"


def test_up_refuses_a_port_taken_by_someone_else(tmp_path, live_settings):
    # The session's Kafka holds this port but was started from another C360_HOME.
    settings = make_service_settings(tmp_path / "home").with_overrides(
        kafka_bootstrap=live_settings.kafka_bootstrap
    )
    try:
        services_up(settings)
        raise AssertionError("up should have refused a port in use")
    except Exception as exc:  # noqa: BLE001
        assert "in use" in str(exc) and "C360_KAFKA_BOOTSTRAP" in str(exc)
    finally:
        services_down(settings)


def test_topics_just_created_answer_at_once(live_settings):
    """A client started right after ensure_topics (the generator on a test's new topics) got
    "Not leader for partition" from a broker that had not taken the partitions yet: 17 of 30
    new topics failed a watermark query made at once. ensure_topics returns once they answer."""
    names = [f"fresh_{uuid.uuid4().hex[:8]}_{i}" for i in range(10)]
    consumer = Consumer({"bootstrap.servers": live_settings.kafka_bootstrap, "group.id": "t"})
    try:
        for name in names:
            assert ensure_topics(live_settings, names=[name]) == [name]
            for partition in range(KAFKA_PARTITIONS):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(name, partition), timeout=5
                )
                assert (low, high) == (0, 0)
    finally:
        consumer.close()
