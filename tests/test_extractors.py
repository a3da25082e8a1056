"""Extractors against the real Kafka and MongoDB: exactly once, in order, quarantined, resumable."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from pymongo import MongoClient

from customer360.services.processes import free_port
from extractors import Extractor
from extractors.mongo_source import COPY_BATCH
from extractors.warehouse import WarehouseLockedError, connect_warehouse
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


def test_kafka_lands_every_record_once_and_resumes_after_restart(isolated_settings):
    first = [weblog(i) for i in range(500)]
    producing = datetime.now(UTC).replace(tzinfo=None)
    produce(isolated_settings, "weblogs", [json.dumps(r) for r in first])
    produced = datetime.now(UTC).replace(tzinfo=None)
    with Extractor(isolated_settings) as extractor:
        result = extractor.extract("weblogs", max_records=200)
        assert (result.records, result.remaining_lag) == (200, 300)
        drain(extractor, ["weblogs"])
    second = [weblog(i) for i in range(300)]
    produce(isolated_settings, "weblogs", [json.dumps(r) for r in second])
    with Extractor(isolated_settings) as restarted:
        drain(restarted, ["weblogs"])
        empty = restarted.extract("weblogs")
        assert not empty.landed_anything and empty.remaining_lag == 0
    with read_only(isolated_settings) as con:
        ids = landed_event_ids(con)
        assert sorted(ids) == sorted(r["event_id"] for r in first + second)
        positions = con.execute(
            'select count(*), count(distinct ("partition", "offset")) from raw.weblogs'
        ).fetchall()[0]
        assert positions == (800, 800)
        # Kafka's time of each message (the producer's, in ms), as naive UTC
        first_times = con.execute(
            'select min("timestamp"), max("timestamp") from raw.weblogs where batch_id = '
            "(select min(batch_id) from raw.weblogs)"
        ).fetchall()[0]
        slack = timedelta(seconds=1)
        assert producing - slack <= first_times[0] <= first_times[1] <= produced + slack
        stored = con.execute("select sum(next_offset) from raw._kafka_offsets").fetchall()[0][0]
        assert stored == 800


def test_bad_kafka_records_are_quarantined_with_a_reason(isolated_settings):
    good_before, good_after = weblog(1), weblog(2)
    # identity stitching: an anonymous visitor's event (anonymous_id, no user_id) is landed
    anonymous = {k: v for k, v in weblog(3).items() if k != "user_id"} | {"anonymous_id": "c-1"}
    email = {
        "email_id": "e1",
        "user_id": 1,
        "date": "2026-11-27T10:00:00+00:00",
        "updated_at": "2026-11-27T10:00:00+00:00",
        "campaign": "c",
        "items": [],
        "email_opened": False,
        "email_clicked": False,
    }
    bad = {
        "{not json": "invalid JSON",
        "[1, 2]": "not a JSON object",
        json.dumps(
            {k: v for k, v in weblog().items() if k != "user_id"}
        ): "user_id or anonymous_id",
        json.dumps(weblog(event_id=None)): "event_id",
        b"\xff\xfe": "not UTF-8",
        None: "empty message",
    }
    values = [json.dumps(good_before), *bad, json.dumps(good_after), json.dumps(anonymous)]
    produce(isolated_settings, "weblogs", values, key=b"1")
    produce(
        isolated_settings,
        "marketing_emails",
        [json.dumps(email), json.dumps({**email, "updated_at": None})],
    )
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["weblogs", "marketing_emails"])
    with read_only(isolated_settings) as con:
        assert sorted(landed_event_ids(con)) == sorted(
            [good_before["event_id"], good_after["event_id"], anonymous["event_id"]]
        )
        assert landed_event_ids(con, "marketing_emails", "email_id") == ["e1"]
        rows = con.execute(
            'select source, "offset", "value", reason from raw.quarantine order by source, "offset"'
        ).fetchall()
    weblog_rows = [r for r in rows if r[0] == "weblogs"]
    assert [r[1] for r in weblog_rows] == [1, 2, 3, 4, 5, 6]
    for (raw_value, expected), (_, _, value, reason) in zip(bad.items(), weblog_rows, strict=True):
        assert expected in reason, (raw_value, reason)
        if raw_value is not None:
            as_bytes = raw_value if isinstance(raw_value, bytes) else raw_value.encode()
            assert value == as_bytes, "quarantine keeps the raw bytes"
    assert [(r[0], r[3]) for r in rows if r[0] == "marketing_emails"] == [
        ("marketing_emails", "missing required field(s): updated_at")
    ]


def test_mongo_updates_and_deletes_land_in_order_and_resume(isolated_settings):
    users = mongo_db(isolated_settings).users
    users.insert_many([{"id": i, "first_name": f"n{i}"} for i in range(50)])
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["users"])
        target = users.find_one({"id": 7})["_id"]
        users.update_one({"_id": target}, {"$set": {"first_name": "first"}})
        users.update_one({"_id": target}, {"$set": {"first_name": "second"}})
        extractor.extract("users", max_records=1)  # a bound of one: stops mid-stream
    with Extractor(isolated_settings) as restarted:
        users.replace_one({"_id": target}, {"id": 7, "first_name": "replaced"})
        users.delete_one({"_id": target})
        users.insert_one({"id": 1000, "first_name": "new"})
        drain(restarted, ["users"])
    with read_only(isolated_settings) as con:
        history = con.execute(
            "select operation, document->>'first_name' from raw.users where document_key = ?"
            " order by cluster_time, batch_id",
            [str(target)],
        ).fetchall()
        # updateLookup reads the document when the event is read, so an update may carry a later
        # state (or none once deleted); the order of the operations is what must hold.
        assert [op for op, _ in history] == ["snapshot", "update", "update", "replace", "delete"]
        assert history[0][1] == "n7" and history[3][1] == "replaced" and history[4][1] is None
        assert current_state(con, "users") == mongo_state(isolated_settings, "users")
        duplicates = con.execute(
            "select count(*) - count(distinct (document_key, cluster_time)) from raw.users"
            " where operation <> 'snapshot'"
        ).fetchall()[0][0]
        assert duplicates == 0


def test_snapshot_then_stream_with_concurrent_writes(isolated_settings):
    users = mongo_db(isolated_settings).users
    users.insert_many([{"id": i, "first_name": f"n{i}", "version": 0} for i in range(3000)])
    stop = threading.Event()

    def write_concurrently():
        rng = random.Random(7)
        next_id = 3000
        while not stop.is_set():
            choice = rng.random()
            if choice < 0.4:
                users.insert_one({"id": next_id, "first_name": "late", "version": 0})
                next_id += 1
            elif choice < 0.8:
                users.update_one({"id": rng.randrange(next_id)}, {"$inc": {"version": 1}})
            else:
                users.delete_one({"id": rng.randrange(next_id)})
            time.sleep(0.002)

    writer = threading.Thread(target=write_concurrently)
    writer.start()
    try:
        with Extractor(isolated_settings) as extractor:
            # Small batches: the copy spans many batches while the writer keeps writing.
            for _ in range(40):
                extractor.extract("users", max_records=150)
            stop.set()
            writer.join()
            drain(extractor, ["users"])
    finally:
        stop.set()
        writer.join()
    with read_only(isolated_settings) as con:
        assert current_state(con, "users") == mongo_state(isolated_settings, "users")
        ops = dict(con.execute("select operation, count(*) from raw.users group by 1").fetchall())
    assert ops["snapshot"] >= 3000 and ops["update"] > 0 and ops["delete"] > 0


def test_a_copy_whose_time_is_up_lands_the_documents_the_server_sent(isolated_settings):
    """A batch's time is up only between the server's replies: with no time at all, each batch
    lands one whole reply of the copy's cursor (a server that sorts the collection before its
    first reply, slower than a batch's time, once made the first batch land one document)."""
    users = mongo_db(isolated_settings).users
    users.insert_many([{"id": i, "version": 0} for i in range(COPY_BATCH + 700)])
    with Extractor(isolated_settings) as extractor:
        first = extractor.extract("users", max_records=250_000, max_seconds=0)
        second = extractor.extract("users", max_records=250_000, max_seconds=0)
        assert (first.records, second.records) == (COPY_BATCH, 700)
        # More of the copy may be waiting: how much is not counted (not "lag 0").
        assert first.remaining_lag is None
        drain(extractor, ["users"])
    with read_only(isolated_settings) as con:
        assert current_state(con, "users") == mongo_state(isolated_settings, "users")


def test_a_copy_waits_for_a_first_reply_slower_than_the_socket_timeout(
    isolated_settings, tmp_path, monkeypatch
):
    """A server may read and sort the whole collection before the copy's first reply
    (SecantusDB does); a large collection on a busy machine took longer than the client's
    socket timeout, so every batch's copy failed and started again and the collection never
    landed. The copy's replies have a time of their own: here the server holds every `find`
    for 1.5 s, three times the socket timeout, and the copy lands the collection."""
    from pymongo import MongoClient
    from secantus.server import SecantusDBServer

    import extractors.runner

    # An in-process SecantusDB, the launcher's server, with mongod's test commands (failpoints).
    server = SecantusDBServer(port=free_port(), storage_path=str(tmp_path / "mongo"))
    server.start()
    try:
        settings = isolated_settings.with_overrides(mongo_uri=f"mongodb://127.0.0.1:{server.port}")
        mongo_db(settings).users.insert_many([{"id": i, "version": 0} for i in range(700)])
        with MongoClient(settings.mongo_uri) as admin:
            admin.admin.command(
                "configureFailPoint",
                "failCommand",
                mode="alwaysOn",
                data={"failCommands": ["find"], "blockConnection": True, "blockTimeMS": 1500},
            )
        monkeypatch.setattr(extractors.runner, "MONGO_SOCKET_TIMEOUT_MS", 500)
        with Extractor(settings) as extractor:
            drain(extractor, ["users"])
        with MongoClient(settings.mongo_uri) as admin:
            admin.admin.command("configureFailPoint", "failCommand", mode="off")
        with read_only(settings) as con:
            assert current_state(con, "users") == mongo_state(settings, "users")
            assert con.execute("select count(*) from raw.users").fetchone()[0] == 700
    finally:
        server.stop()


def test_a_mongo_batch_that_fails_to_land_is_read_again(isolated_settings, monkeypatch):
    """A batch whose landing fails (the warehouse, not MongoDB) leaves the copy's cursor and the
    change stream past what was landed: the next batch, even through `Extractor.extract` alone,
    starts again from the stored position, and nothing is skipped."""
    from extractors.mongo_source import MongoSource

    users = mongo_db(isolated_settings).users
    users.insert_many([{"id": i, "version": 0} for i in range(300)])
    real_land = MongoSource._land
    fail_next = threading.Event()

    def land_or_fail(self, *args, **kwargs):
        if fail_next.is_set():
            fail_next.clear()
            raise duckdb.IOException("disk full (injected)")
        return real_land(self, *args, **kwargs)

    monkeypatch.setattr(MongoSource, "_land", land_or_fail)
    with Extractor(isolated_settings) as extractor:
        fail_next.set()
        with pytest.raises(duckdb.IOException):
            extractor.extract("users", max_records=100)  # the copy's first batch
        for _ in range(4):  # the copy, from its first document again, to its end
            extractor.extract("users", max_records=100)
        users.update_many({"id": {"$lt": 50}}, {"$set": {"version": 1}})
        users.delete_many({"id": {"$gte": 250}})
        fail_next.set()
        with pytest.raises(duckdb.IOException):
            extractor.extract("users", max_records=30)  # the stream's first batch
        drain(extractor, ["users"])
    with read_only(isolated_settings) as con:
        assert current_state(con, "users") == mongo_state(isolated_settings, "users")


def test_a_stream_that_cannot_resume_is_copied_again_and_vanished_documents_deleted(
    isolated_settings,
):
    users = mongo_db(isolated_settings).users
    users.insert_many([{"id": i, "version": 0} for i in range(100)])
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["users"])
    # While nothing follows the stream: changes, then the stored position becomes unusable.
    users.delete_many({"id": {"$lt": 10}})
    users.update_many({"id": {"$gte": 90}}, {"$set": {"version": 1}})
    users.insert_one({"id": 500, "version": 0})
    with duckdb.connect(str(isolated_settings.warehouse)) as con:
        con.execute('update raw._mongo_positions set resume_token = \'{"_data": "00"}\'')
    with Extractor(isolated_settings) as extractor:
        result = extractor.extract("users")
        assert "re-snapshot" in result.note
        drain(extractor, ["users"])
    with read_only(isolated_settings) as con:
        assert current_state(con, "users") == mongo_state(isolated_settings, "users")
        reasons = con.execute("select collection, reason from raw._resnapshots").fetchall()
        deletes = con.execute(
            "select count(*) from raw.users where operation = 'delete'"
        ).fetchall()[0][0]
    assert len(reasons) == 1 and reasons[0][0] == "users" and "resume" in reasons[0][1]
    assert deletes == 10


def test_a_copy_resumed_after_a_restart_lands_ids_of_every_bson_type(isolated_settings):
    """The copy goes on after the last `_id` it landed. A query's `{"_id": {"$gt": last}}`
    matches only `_id`s of the last one's BSON type (MongoDB's type bracketing, which SecantusDB
    follows), so a copy stopped after the integer ids (they sort first: numbers, strings,
    objects, ObjectIds, dates) and resumed by a restart landed 3 of these 12 documents and
    never the rest; a re-snapshot so interrupted landed the rest as deletes."""
    from extractors.mongo_source import document_key_text

    users = mongo_db(isolated_settings).users
    ids = [1, 2, 3, "a", "$b", {"k": 1}, {"k": 2}, datetime(2026, 1, 1)]
    users.insert_many([{"_id": key, "id": n} for n, key in enumerate(ids)])
    users.insert_many([{"id": 100 + n} for n in range(4)])  # ObjectId ids
    expected = {document_key_text(d["_id"]): d["id"] for d in users.find()}

    def landed() -> dict[str, int]:
        with read_only(isolated_settings) as con:
            return {k: doc["id"] for k, doc in current_state(con, "users").items()}

    with Extractor(isolated_settings) as extractor:
        extractor.extract("users", max_records=2)  # the copy stops after the ids 1 and 2
    with Extractor(isolated_settings) as restarted:
        drain(restarted, ["users"])
    assert landed() == expected

    # The same for a copy made again because the stream could not resume: nothing it did not
    # reach may land as a delete.
    with duckdb.connect(str(isolated_settings.warehouse)) as con:
        con.execute('update raw._mongo_positions set resume_token = \'{"_data": "00"}\'')
    with Extractor(isolated_settings) as extractor:
        assert "re-snapshot" in extractor.extract("users").note
        extractor.extract("users", max_records=2)
    with Extractor(isolated_settings) as restarted:
        drain(restarted, ["users"])
    assert landed() == expected


def test_a_kafka_record_nested_too_deeply_to_parse_is_quarantined(isolated_settings):
    """Python's JSON parser raises RecursionError, not JSONDecodeError, past ~1,000 levels of
    nesting: a 2 KB record failed its batch and every batch after it (nothing landed, the
    records behind it neither). It is quarantined with its bytes and the reason instead."""
    deep = json.dumps(weblog(1))[:-1] + ', "extra": ' + "[" * 1000 + "]" * 1000 + "}"
    before, after = weblog(2), weblog(3)
    produce(isolated_settings, "weblogs", [json.dumps(before), deep, json.dumps(after)], key=b"1")
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["weblogs"])
    with read_only(isolated_settings) as con:
        assert sorted(landed_event_ids(con)) == sorted([before["event_id"], after["event_id"]])
        quarantined = con.execute('select "offset", "value", reason from raw.quarantine').fetchall()
    assert len(quarantined) == 1
    offset, value, reason = quarantined[0]
    assert (offset, value) == (1, deep.encode())
    assert "nested too deeply" in reason


def test_records_of_a_transactional_producer_land_and_the_position_passes_its_markers(
    isolated_settings,
):
    """A transactional producer writes a commit or abort marker after its records, and an
    aborted transaction's records stay in the log; a consumer receives neither, yet both take
    offsets. The position stayed on the first of them: every later batch waited its whole
    time for an offset that never came (the stream's batches 10 s each) and the lag never
    reached 0. Here: 3 committed records (offsets 0-2), a marker (3), an aborted record (4), a
    marker (5), then one more committed record (6) and its marker (7). Then a transaction
    still open (8): its record is not landed and the position stays before it (the end of
    partition a consumer sees is the last stable offset), until it commits (9: its marker)."""
    from confluent_kafka import Producer

    topic = isolated_settings.topic("weblogs")
    producer = Producer(
        {
            "bootstrap.servers": isolated_settings.kafka_bootstrap,
            "transactional.id": f"{topic}-tx",
        }
    )
    producer.init_transactions(30)
    committed = [weblog(i) for i in range(3)]
    producer.begin_transaction()
    for record in committed:
        producer.produce(topic, json.dumps(record), partition=0)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, json.dumps(weblog(9)), partition=0)
    producer.flush(30)  # in the log, then aborted
    producer.abort_transaction(30)
    last = weblog(4)
    producer.begin_transaction()
    producer.produce(topic, json.dumps(last), partition=0)
    producer.commit_transaction(30)

    with Extractor(isolated_settings) as extractor:
        landed = extractor.extract("weblogs", max_records=1000, max_seconds=5)
        assert (landed.records, landed.remaining_lag) == (4, 0)
        empty = extractor.extract("weblogs", max_records=1000, max_seconds=5)
        # the position is past the markers: nothing left to wait for
        assert not empty.landed_anything and empty.remaining_lag == 0
    with read_only(isolated_settings) as con:
        assert sorted(landed_event_ids(con)) == sorted(r["event_id"] for r in [*committed, last])
        assert stored_offset(con) == 8

    pending = weblog(5)
    producer.begin_transaction()
    producer.produce(topic, json.dumps(pending), partition=0)
    producer.flush(30)  # in the log, not committed yet
    with Extractor(isolated_settings) as extractor:
        extractor.extract("weblogs", max_records=1000, max_seconds=2)
    with read_only(isolated_settings) as con:
        assert pending["event_id"] not in landed_event_ids(con)
        assert stored_offset(con) == 8, "the position stays before the open transaction"
    producer.commit_transaction(30)
    with Extractor(isolated_settings) as extractor:
        extractor.extract("weblogs", max_records=1000, max_seconds=5)
    with read_only(isolated_settings) as con:
        assert pending["event_id"] in landed_event_ids(con)
        assert stored_offset(con) == 10


def stored_offset(con) -> int:
    return con.execute(
        'select next_offset from raw._kafka_offsets where "partition" = 0'
    ).fetchone()[0]


def test_changes_of_one_document_in_one_transaction_land_in_their_order(isolated_settings):
    """Every change of a transaction has the transaction's cluster time. Landed in one batch,
    a delete and a new insert of the same `_id` had the same (cluster_time, batch_id), the
    landing contract's order, and staging's tie-break (a delete after a document at the same
    position) read the live document as deleted. Each batch now ends before a second change
    of a document at one cluster time, so the batch ids order them."""
    client = MongoClient(isolated_settings.mongo_uri)
    users = client[isolated_settings.mongo_db].users
    users.insert_many([{"id": i, "first_name": f"n{i}"} for i in range(3)])
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["users"])
        again = users.find_one({"id": 1})
        with client.start_session() as session, session.start_transaction():
            users.delete_one({"_id": again["_id"]}, session=session)
            users.insert_one({**again, "first_name": "again"}, session=session)
            users.update_one({"id": 2}, {"$set": {"first_name": "x"}}, session=session)
            users.update_one({"id": 2}, {"$set": {"first_name": "y"}}, session=session)
            users.delete_one({"id": 0}, session=session)
        drain(extractor, ["users"])
    client.close()
    with read_only(isolated_settings) as con:
        tied = con.execute(
            "select count(*) from (select document_key from raw.users"
            " group by document_key, cluster_time, batch_id having count(*) > 1)"
        ).fetchone()[0]
        assert tied == 0, "two changes of a document at one position: no order between them"
        history = con.execute(
            "select operation, document->>'first_name' from raw.users where document_key = ?"
            " order by cluster_time, batch_id",
            [str(again["_id"])],
        ).fetchall()
        assert history == [("snapshot", "n1"), ("delete", None), ("insert", "again")]
        assert current_state(con, "users") == mongo_state(isolated_settings, "users")


def test_a_locked_warehouse_fails_naming_the_holder(isolated_settings):
    isolated_settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
            " time.sleep(60)",
            str(isolated_settings.warehouse),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseLockedError) as failure:
            connect_warehouse(isolated_settings.warehouse, lock_wait_s=1.0)
        assert str(holder.pid) in str(failure.value)
    finally:
        holder.kill()
        holder.wait()
    connect_warehouse(isolated_settings.warehouse, lock_wait_s=5.0).close()


def test_new_kafka_partitions_are_picked_up(isolated_settings, monkeypatch):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewPartitions

    import extractors.kafka_source as kafka_source

    monkeypatch.setattr(kafka_source, "METADATA_REFRESH_S", 0.0)
    produce(isolated_settings, "weblogs", [json.dumps(weblog()) for _ in range(30)])
    with Extractor(isolated_settings) as extractor:
        drain(extractor, ["weblogs"])
        topic = isolated_settings.topic("weblogs")
        admin = AdminClient({"bootstrap.servers": isolated_settings.kafka_bootstrap})
        for future in admin.create_partitions([NewPartitions(topic, 4)]).values():
            future.result(30)
        producer = Producer({"bootstrap.servers": isolated_settings.kafka_bootstrap})
        late = weblog()
        producer.produce(topic, value=json.dumps(late), partition=3)
        assert producer.flush(30) == 0
        for _ in range(50):
            if extractor.extract("weblogs").records:
                break
            time.sleep(0.2)
    with read_only(isolated_settings) as con:
        assert late["event_id"] in landed_event_ids(con)
        partitions = con.execute('select "partition" from raw._kafka_offsets order by 1').fetchall()
    assert [p for (p,) in partitions] == [0, 1, 2, 3]
