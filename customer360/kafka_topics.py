"""Creates the Kafka topics of the sources (`weblogs`, `marketing_emails`), or others, if they
are missing."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from customer360.config import KAFKA_PARTITIONS, KAFKA_TOPICS, Settings

# The topics hold the whole history of the demo (a year of weblogs), so they keep it forever.
TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}


def admin_client(settings: Settings) -> AdminClient:
    """An admin client whose failures its caller reports: librdkafka's own log (to stderr, not
    through Python) has a line for every failed connection attempt, ~20 a second while Kafka is
    away, ~300 before a 15 s timeout and the caller's one line saying what to do."""
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 2})


def ensure_topics(
    settings: Settings, timeout_s: float = 15.0, names: list[str] | None = None
) -> list[str]:
    """Create the topics `names` (default: the sources') with `KAFKA_PARTITIONS` partitions,
    kept forever; return the ones created, once every partition of them answers a client.

    Topics that already exist are left as they are.
    """
    admin = admin_client(settings)
    if names is None:
        names = [settings.topic(name) for name in KAFKA_TOPICS]
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as error:
        raise RuntimeError(
            f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout_s:.0f} s; "
            f"is it running? `c360 services status` ({error})"
        ) from error
    missing = [name for name in names if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=KAFKA_PARTITIONS,
                replication_factor=-1,
                config=TOPIC_CONFIG,
            )
            for name in missing
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(
                    f"could not create Kafka topic {name!r} at {settings.kafka_bootstrap}: "
                    f"{error.args[0].str()}"
                ) from error
    wait_for_leaders(settings, created, timeout_s)
    return created


def wait_for_leaders(settings: Settings, names: list[str], timeout_s: float) -> None:
    """Wait until every partition of the topics `names` gives its offsets. The broker takes the
    partitions of a topic just created a moment after the creation returns, and answers "Not
    leader for partition" until then: 17 of 30 topics created on an idle local broker failed a
    watermark query made right after (a test's generator, started on new topics, failed so)."""
    if not names:
        return
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": "c360-topics", "log_level": 2}
    )
    deadline = time.monotonic() + timeout_s
    try:
        for name in names:
            for partition in range(KAFKA_PARTITIONS):
                while True:
                    try:
                        consumer.get_watermark_offsets(
                            TopicPartition(name, partition), timeout=timeout_s
                        )
                        break
                    except KafkaException as error:
                        if time.monotonic() > deadline:
                            raise RuntimeError(
                                f"Kafka topic {name!r} at {settings.kafka_bootstrap} was created "
                                f"but partition {partition} has no leader after {timeout_s:.0f} "
                                f"s: {error.args[0].str()}"
                            ) from error
                        time.sleep(0.05)
    finally:
        consumer.close()
