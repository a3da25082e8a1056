"""Extractor throughput and empty-batch cost, measured against running services.

    python -m extractors.benchmark [--kafka-records N] [--mongo-changes N]

Uses a throwaway database, topic prefix and warehouse, so it never touches the demo's data.
Figures only: nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from pymongo import MongoClient

from customer360.config import load_settings
from customer360.kafka_topics import ensure_topics
from extractors.runner import Extractor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kafka-records", type=int, default=300_000)
    parser.add_argument("--mongo-changes", type=int, default=50_000)
    args = parser.parse_args(argv)
    suffix = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings().with_overrides(
            mongo_db=f"bench_{suffix}",
            kafka_topic_prefix=f"bench{suffix}_",
            warehouse=Path(tmp) / "bench.duckdb",
        )
        ensure_topics(settings)
        producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "linger.ms": 20,
                "batch.num.messages": 10000,
                "compression.type": "lz4",
            }
        )
        for i in range(args.kafka_records):
            producer.produce(
                settings.topic("weblogs"),
                key=str(i % 1000),
                value=json.dumps(
                    {
                        "event_id": str(uuid.uuid4()),
                        "user_id": i % 1000,
                        "date": "2026-11-27T10:00:00+00:00",
                        "session_id": "s",
                        "page": "home.html",
                        "action": "view",
                        "error_message": None,
                    }
                ),
            )
            if i % 10000 == 0:
                producer.poll(0)
        producer.flush()
        client = MongoClient(settings.mongo_uri)
        users = client[settings.mongo_db].users
        with Extractor(settings) as extractor:
            extractor.extract("users")  # opens the change stream (empty copy)
            start = time.perf_counter()
            landed = 0
            while landed < args.kafka_records:
                landed += extractor.extract("weblogs", max_records=100_000, max_seconds=10).records
            kafka_rate = landed / (time.perf_counter() - start)

            for chunk in range(0, args.mongo_changes, 5000):
                users.insert_many(
                    [
                        {"id": i, "first_name": "n", "address": {"city": "Leeds"}}
                        for i in range(chunk, min(chunk + 5000, args.mongo_changes))
                    ]
                )
            start = time.perf_counter()
            landed = 0
            while landed < args.mongo_changes:
                landed += extractor.extract("users", max_records=50_000, max_seconds=10).records
            mongo_rate = landed / (time.perf_counter() - start)

            empty = {}
            for source in ("weblogs", "users"):
                times = []
                for _ in range(20):
                    t = time.perf_counter()
                    extractor.extract(source)
                    times.append((time.perf_counter() - t) * 1000)
                empty[source] = statistics.median(times)
        client.drop_database(settings.mongo_db)
    print(
        f"kafka -> duckdb:          {kafka_rate:>10,.0f} records/s ({args.kafka_records:,} "
        "records, 3 partitions)"
    )
    print(
        f"mongo changes -> duckdb:  {mongo_rate:>10,.0f} events/s ({args.mongo_changes:,} inserts)"
    )
    print(
        f"empty batch, warm:        weblogs {empty['weblogs']:.1f} ms, users "
        f"{empty['users']:.1f} ms (median of 20)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
