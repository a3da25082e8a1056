"""Small writers and readers for the extractor tests: what was written vs what landed."""

from __future__ import annotations

import json
import uuid

import duckdb
from confluent_kafka import Producer
from pymongo import MongoClient

from customer360.config import Settings


def produce(settings: Settings, source: str, values: list[bytes | str | None], key=None) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5, "acks": "all"}
    )
    for value in values:
        producer.produce(settings.topic(source), value=value, key=key)
        producer.poll(0)
    assert producer.flush(30) == 0


def weblog(user_id: int = 1, **extra) -> dict:
    record = {
        "event_id": str(uuid.uuid4()),
        "user_id": user_id,
        "date": "2026-11-27T10:00:00+00:00",
        "session_id": "s1",
        "page": "home.html",
        "action": "view",
        "error_message": None,
    }
    record.update(extra)
    return record


def mongo_db(settings: Settings):
    return MongoClient(settings.mongo_uri)[settings.mongo_db]


def read_only(settings: Settings) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(settings.warehouse), read_only=True)


def landed_event_ids(con, source: str = "weblogs", field: str = "event_id") -> list[str]:
    return [r[0] for r in con.execute(f"select value->>'{field}' from raw.{source}").fetchall()]


def current_state(con, collection: str) -> dict[str, dict]:
    """The latest landed state of each live document, keyed by document_key."""
    rows = con.execute(
        f"""
        select document_key, operation, document from raw.{collection}
        qualify row_number() over (
            partition by document_key order by cluster_time desc, batch_id desc) = 1
        """
    ).fetchall()
    return {key: json.loads(doc) for key, op, doc in rows if op != "delete" and doc is not None}


def mongo_state(settings: Settings, collection: str) -> dict[str, dict]:
    from bson import json_util
    from bson.json_util import RELAXED_JSON_OPTIONS

    return {
        str(doc["_id"]): json.loads(json_util.dumps(doc, json_options=RELAXED_JSON_OPTIONS))
        for doc in mongo_db(settings)[collection].find()
    }


def drain(extractor, sources, rounds: int = 200) -> None:
    """Extract until a full round lands nothing."""
    for _ in range(rounds):
        landed, errors = extractor.extract_all(tuple(sources), max_records=5000, max_seconds=5)
        if errors:
            raise next(iter(errors.values()))
        results = list(landed.values())
        if not any(r.landed_anything for r in results) and all(
            r.remaining_lag in (0, None) for r in results
        ):
            return
    raise AssertionError("extraction did not catch up")
