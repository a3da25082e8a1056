"""Exactly once under SIGKILL, and clear failures when a broker or server restarts."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

from customer360.services import services_down, services_up
from customer360.services.kafka import KafkaService
from customer360.services.mongo import MongoService
from extractors import Extractor
from extractors.kafka_source import KafkaExtractError
from extractors.mongo_source import MongoExtractError, cluster_time_number
from tests.conftest import REPO, make_service_settings
from tests.extractor_helpers import (
    current_state,
    drain,
    landed_event_ids,
    mongo_db,
    mongo_state,
    produce,
    read_only,
    weblog,
)

KILLS = 20
KAFKA_RECORDS = 20_000
MONGO_CHANGES = 2_000

pytestmark = pytest.mark.services  # restarts Kafka and MongoDB of its own


def _env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "C360_MONGO_URI": settings.mongo_uri,
        "C360_MONGO_DB": settings.mongo_db,
        "C360_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "C360_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "C360_WAREHOUSE": str(settings.warehouse),
        "C360_HOME": str(settings.home),
    }


def test_exactly_once_when_the_extractor_is_killed_at_random(isolated_settings):
    settings = isolated_settings
    db = mongo_db(settings)
    db.users.insert_many([{"id": i, "first_name": f"n{i}", "version": 0} for i in range(500)])
    written_events: list[str] = []
    changes: list[tuple[str, str, int]] = []
    recorder_ready = threading.Event()
    stop = threading.Event()

    def record_changes():
        with db.watch(max_await_time_ms=100) as stream:
            recorder_ready.set()
            while not stop.is_set() or stream.try_next() is not None:
                change = stream.try_next()
                if change and change["operationType"] in ("insert", "update", "replace", "delete"):
                    changes.append(
                        (
                            change["ns"]["coll"],
                            str(change["documentKey"]["_id"]),
                            cluster_time_number(change["clusterTime"]),
                        )
                    )

    def write():
        rng = random.Random(11)
        next_id = 500
        for _ in range(40):
            records = [weblog(rng.randrange(500)) for _ in range(KAFKA_RECORDS // 40)]
            produce(settings, "weblogs", [json.dumps(r) for r in records])
            written_events.extend(r["event_id"] for r in records)
            for _ in range(MONGO_CHANGES // 40):
                choice = rng.random()
                if choice < 0.4:
                    db.users.insert_one({"id": next_id, "first_name": "new", "version": 0})
                    next_id += 1
                elif choice < 0.85:
                    db.users.update_one({"id": rng.randrange(next_id)}, {"$inc": {"version": 1}})
                else:
                    db.users.delete_one({"id": rng.randrange(next_id)})
            time.sleep(0.3)

    recorder = threading.Thread(target=record_changes)
    recorder.start()
    recorder_ready.wait(10)
    writer = threading.Thread(target=write)
    writer.start()
    command = [
        sys.executable,
        "-m",
        "customer360.cli",
        "extract",
        "--follow",
        "--interval",
        "0.05",
        "--max-records",
        "700",
        "--source",
        "users",
        "--source",
        "weblogs",
    ]
    rng = random.Random(3)
    kills = 0
    try:
        while kills < KILLS or writer.is_alive():
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env=_env(settings),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            # Kill at a random moment after it started working (its first summary line), so
            # that a slow start on a busy machine does not make every kill land before any work.
            ready, _, _ = select.select([process.stdout], [], [], 60)
            if not ready or not process.stdout.readline():
                process.kill()
                pytest.fail("the extractor did not start:\n" + process.stderr.read().decode())
            time.sleep(rng.uniform(0.0, 1.0))
            if process.poll() is not None:
                pytest.fail("the extractor died by itself:\n" + process.stderr.read().decode())
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
        writer.join()
    finally:
        stop.set()
        writer.join()
        recorder.join()
    assert kills >= KILLS

    with Extractor(settings) as extractor:
        drain(extractor, ["users", "weblogs"])
    with read_only(settings) as con:
        landed = landed_event_ids(con)
        assert len(landed) == len(set(landed)), "a Kafka record landed twice"
        assert set(landed) == set(written_events), "a Kafka record was lost"
        assert current_state(con, "users") == mongo_state(settings, "users")
        stream_events = con.execute(
            "select document_key, cluster_time from raw.users where operation <> 'snapshot'"
        ).fetchall()
    assert len(stream_events) > MONGO_CHANGES / 2, "the extractors should have followed the stream"
    assert len(stream_events) == len(set(stream_events)), "a change landed twice"
    first = min(t for _, t in stream_events)
    expected = {(key, t) for coll, key, t in changes if coll == "users" and t >= first}
    assert expected - set(stream_events) == set(), "a change after the stream opened was lost"


def drain_retrying(extractor, source: str, error: type[Exception], within_s: float = 60) -> None:
    """Drain as the next micro-batches would: a server that just restarted may still fail some
    batches clearly (e.g. partitions not loaded yet) before it serves again."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            drain(extractor, [source])
            return
        except error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture
def own_services(tmp_path):
    """Services of this test alone, since it restarts them."""
    settings = make_service_settings(tmp_path / "home")
    services_up(settings)
    yield settings
    services_down(settings)


def test_broker_and_server_restarts_fail_the_batch_clearly_and_lose_nothing(own_services):
    settings = own_services
    first = [weblog(i) for i in range(100)]
    produce(settings, "weblogs", [json.dumps(r) for r in first])
    mongo_db(settings).users.insert_many([{"id": i} for i in range(100)])
    with Extractor(settings) as extractor:
        drain(extractor, ["users", "weblogs"])

        kafka = KafkaService(settings)
        kafka.stop()
        time.sleep(1.5)  # past the time the extractor trusts watermarks it already has
        with pytest.raises(KafkaExtractError, match="Kafka at .* is it running"):
            extractor.extract("weblogs")
        kafka.start()
        second = [weblog(i) for i in range(100)]
        produce(settings, "weblogs", [json.dumps(r) for r in second])
        drain_retrying(extractor, "weblogs", KafkaExtractError)

        mongo = MongoService(settings)
        mongo.stop()
        with pytest.raises(MongoExtractError, match="Is the server running"):
            extractor.extract("users", max_seconds=1)
        mongo.start()
        mongo_db(settings).users.insert_many([{"id": i} for i in range(100, 150)])
        drain_retrying(extractor, "users", MongoExtractError)
    with read_only(settings) as con:
        assert sorted(landed_event_ids(con)) == sorted(r["event_id"] for r in first + second)
        assert current_state(con, "users") == mongo_state(settings, "users")
