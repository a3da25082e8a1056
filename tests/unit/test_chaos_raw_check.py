"""check_raw's logged Mongo writes: every write the log proves left a change event in raw, not
only some row of the document (the identity and consent oracle reads the users history from
raw.users). No services: raw is written as the extractor writes it (RawLanding)."""

from __future__ import annotations

import duckdb
from bson.json_util import loads

from customer360.chaos.oracle import SourceData
from customer360.chaos.verify import check_raw, required_changes
from customer360.config import Settings
from tests.dbt_fixtures.raw_builder import RawLanding, object_id


def landed_users(tmp_path):
    """Customer 1: copied, then updated twice by the stream; customer 2: copied only."""
    warehouse = tmp_path / "warehouse.duckdb"
    raw = RawLanding([warehouse])
    raw.user("snapshot", 1, 1, email="ann@example.com")
    raw.user("snapshot", 2, 2)
    raw.land()
    for email in ("ben@example.com", "cat@example.com"):
        raw.tick(60)
        raw.user("update", 1, 1, email=email)
    raw.land()
    con = duckdb.connect(str(warehouse))
    con.execute("create schema staging")
    con.execute("create table staging.stg_rejected_records (position varchar)")
    # The stream's log: it starts once the copy is done, so it logs the two updates only.
    log = [{"source": "users", "kind": "profile_update", "op": "update", "_id": object_id(1)}] * 2
    return con, log


def mongo_now(con) -> SourceData:
    """What MongoDB holds: each document's latest landed state."""
    documents = {
        table: [
            loads(document)
            for (document,) in con.execute(
                f"select document from raw.{table} qualify row_number() over ("
                " partition by document_key order by cluster_time desc) = 1"
            ).fetchall()
            if document is not None
        ]
        for table in ("users", "online_orders", "instore_orders")
    }
    return SourceData(messages={"weblogs": [], "marketing_emails": []}, documents=documents)


def test_a_lost_update_is_lost_even_when_the_latest_state_landed(tmp_path):
    con, log = landed_users(tmp_path)
    complete = check_raw(con, Settings(), mongo_now(con), log)
    assert complete.ok, complete.examples
    # the extractor loses the first update; the second (the current state) landed
    con.execute(
        "delete from raw.users where operation = 'update' and cluster_time = ("
        " select min(cluster_time) from raw.users where operation = 'update')"
    )
    lossy = check_raw(con, Settings(), mongo_now(con), log)
    assert (lossy.lost, lossy.duplicates, lossy.mismatches) == (1, 0, 0), lossy.examples
    assert "2 logged writes (update, update), 1 changes in raw" in lossy.examples[0]


def test_a_collection_copied_again_is_not_held_to_its_change_count(tmp_path):
    con, log = landed_users(tmp_path)
    con.execute("delete from raw.users where operation = 'update'")
    con.execute("insert into raw._resnapshots values ('users', now(), 'resume token lost')")
    # (the copy's rows would hold the current state; here the snapshot row does)
    log = [{**entry, "_id": object_id(2)} for entry in log]
    found = check_raw(con, Settings(), mongo_now(con), log)
    assert found.ok, found.examples
    assert found.checked["users: change counts not checked (copied again)"] == 1


def test_writes_that_may_have_matched_nothing_are_not_required():
    stream = [{"kind": "new_customer", "op": "insert"}, {"kind": "profile_update", "op": "update"}]
    assert required_changes(stream) == 2
    assert required_changes([*stream, {"kind": "user_delete", "op": "delete"}]) == 3
    # churn_customers deleted the customer behind the stream's back: the stream's update (and
    # a later delete of its own) may have come after, matching nothing
    churned = [*stream, {"kind": "chaos_delete", "op": "delete"},
               {"kind": "profile_update", "op": "update"}]  # fmt: skip
    assert required_changes(churned) == 2
    assert required_changes([{"kind": "chaos_update", "op": "update"}] * 2) == 2
