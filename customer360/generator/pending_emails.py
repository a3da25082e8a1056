"""Emails a customer may still open or click, found at the end of the `marketing_emails` topic.

When a stream starts on an existing history, the opens and clicks of emails sent before it are
still to come: `discover_pending_emails` reads the last records of each partition with a Kafka
consumer and plans the steps each email has left, in the history's proportions.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from customer360.config import Settings
from customer360.generator import records


@dataclass
class PendingEmail:
    """An email the customer will still open and/or click: `steps` in order."""

    email_id: str
    user_id: int
    date: str  # ISO send time, as in its first record
    campaign: str
    items: list[str]
    steps: list[str]  # "open" / "click" / "unsubscribe", in that order
    clicked: bool = False  # a click was recorded (an unsubscribe record carries the flag)
    recipient_email: str | None = None  # the address it was sent to (identity data only)


def discover_pending_emails(
    settings: Settings, rng: random.Random, per_partition: int = 3_000, timeout_s: float = 5.0
) -> list[PendingEmail]:
    """Emails at the end of the `marketing_emails` topic that a customer may still open/click.

    Reads the last `per_partition` records of each partition; takes each email's latest flags.
    """
    topic = settings.topic("marketing_emails")
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "c360-generator-discovery",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    latest: dict[str, dict[str, Any]] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        assignments, remaining = [], set()
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            if high > low:
                assignments.append(TopicPartition(topic, partition, max(low, high - per_partition)))
                remaining.add(partition)
        if not assignments:
            return []
        consumer.assign(assignments)
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    remaining.discard(message.partition())
                continue
            try:
                email = json.loads(message.value())
                email_id, user_id = email["email_id"], email["user_id"]
                if not isinstance(user_id, int) or isinstance(user_id, bool):
                    continue
                opened, clicked = bool(email["email_opened"]), bool(email["email_clicked"])
                known = latest.get(email_id)
                if known is not None:
                    opened, clicked = opened or known["opened"], clicked or known["clicked"]
                latest[email_id] = {**email, "opened": opened, "clicked": clicked}
            except (ValueError, KeyError, TypeError):
                continue  # a bad record
    finally:
        consumer.close()
    pending = []
    for email in latest.values():
        if email["clicked"]:
            continue
        if email["opened"]:
            steps = ["click"] if rng.random() < records.MEAN_CLICK_GIVEN_OPEN else []
        elif rng.random() < records.MEAN_OPEN_RATE:
            steps = ["open", "click"] if rng.random() < records.MEAN_CLICK_GIVEN_OPEN else ["open"]
            if rng.random() < records.UNSUBSCRIBE_SHARE:
                steps.append("unsubscribe")
        else:
            steps = []
        if steps:
            pending.append(
                PendingEmail(
                    email["email_id"],
                    email["user_id"],
                    email["date"],
                    email.get("campaign", ""),
                    list(email.get("items") or []),
                    steps,
                    recipient_email=email.get("recipient_email"),
                )
            )
    return pending
