"""Every audience change reaches Kafka exactly once, across crashes of the publisher.

A DuckDB file stands for the serving copy (its `audience_changes`), the publisher runs as
`c360 audiences publish` in a subprocess against the test's real Kafka, and a real consumer
(isolation.level=read_committed, as a subscriber must read) reads the topic back:
1. 300 changes published, the publisher stops (--once);
2. 700 more appear; a publisher produces them and is SIGKILLed after producing, before
   committing (its transaction is left open);
3. 500 more appear; a new publisher aborts the open transaction (init_transactions), reads the
   position back from the topic and publishes 301..1500; then it is SIGKILLed after it
   committed (idle), and a third run has nothing to send.
The topic then holds 1..1500, each exactly once, each key's changes in sequence order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from confluent_kafka import Consumer, KafkaError

from customer360.audiences.publisher import topic_name
from customer360.config import Settings

pytestmark = pytest.mark.services

AUDIENCES = ("at_risk_high_value", "browsed_never_bought", "lapsed_instore_buyers")


def append_changes(path: Path, first: int, count: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create table if not exists audience_changes (sequence bigint, audience varchar,"
            " customer_id bigint, change varchar, changed_at timestamp)"
        )
        con.executemany(
            "insert into audience_changes values (?, ?, ?, ?, now()::timestamp)",
            [
                (s, AUDIENCES[s % 3], s % 97, "entered" if (s // 3) % 2 == 0 else "exited")
                for s in range(first, first + count)
            ],
        )


def publisher(settings: Settings, source: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "customer360.cli",
            "audiences",
            "publish",
            "--source",
            str(source),
            *extra,
        ],
        env=settings.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def read_topic(settings: Settings) -> list[dict]:
    """Every committed message of the topic, as a subscriber reads it."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"test-reader-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    topic = topic_name(settings)
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.subscribe([topic])
    messages, ended = [], set()
    deadline = time.monotonic() + 60
    while len(ended) < len(partitions) and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
                continue
            raise AssertionError(message.error())
        value = json.loads(message.value())
        assert message.key().decode() == f"{value['audience']}:{value['customer_id']}"
        assert dict(message.headers())["sequence"] == str(value["sequence"]).encode()
        messages.append({**value, "partition": message.partition(), "offset": message.offset()})
    consumer.close()
    return messages


def run_once(settings: Settings, source: Path) -> str:
    process = publisher(settings, source, "--once")
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0, out
    return out


def test_every_change_published_exactly_once_across_crashes(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings
    source = tmp_path / "serving.duckdb"

    append_changes(source, 1, 300)
    assert "300 published" in run_once(settings, source)

    # Killed between produce and commit.
    append_changes(source, 301, 700)
    marker = tmp_path / "produced-not-committed"
    process = publisher(settings, source, "--pause-before-commit", str(marker))
    wait_for(lambda: marker.exists() or process.poll() is not None, 120, "the produce")
    assert process.poll() is None, process.communicate()[0]
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    assert sorted(m["sequence"] for m in read_topic(settings)) == list(range(1, 301))

    # A new publisher aborts the open transaction and sends 301.. again, then is killed idle.
    append_changes(source, 1001, 500)
    process = publisher(settings, source, "--interval", "0.2")
    wait_for(lambda: len(read_topic(settings)) >= 1500, 120, "1500 changes in the topic")
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    assert "0 published" in run_once(settings, source)

    messages = read_topic(settings)
    sequences = sorted(m["sequence"] for m in messages)
    assert sequences == list(range(1, 1501)), "every change exactly once"
    with duckdb.connect(str(source)) as con:
        expected = {
            row[0]: row[1:]
            for row in con.execute(
                "select sequence, audience, customer_id, change from audience_changes"
            ).fetchall()
        }
    for m in messages:
        assert (m["audience"], m["customer_id"], m["change"]) == expected[m["sequence"]]
    by_key: dict[str, list[tuple[int, int]]] = {}
    for m in messages:
        by_key.setdefault(f"{m['audience']}:{m['customer_id']}", []).append(
            (m["offset"], m["sequence"])
        )
    for key, seen in by_key.items():
        assert [s for _, s in sorted(seen)] == sorted(s for _, s in seen), key
