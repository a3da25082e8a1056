"""Identity stitching through the real pipeline: `c360 seed --identity`'s history (anonymous
browsing, shared devices, guest till sales) in real Kafka and MongoDB, landed and built by
micro-batches; then a live visitor whose anonymous error is stitched retroactively when they log
in, and a guest sale by their address. The marts must equal what the chaos soak's independent
oracle computes from the sources, and a full rebuild (the nightly reconciliation)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from customer360.chaos.oracle import expected_marts, marts_rows, read_sources
from customer360.chaos.verify import compare_marts
from customer360.generator.history import seed
from customer360.pipeline import MicroBatch
from customer360.pipeline.probe import close_probers
from customer360.pipeline.reconcile import reconcile
from tests.extractor_helpers import mongo_db, produce

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def batch(isolated_settings):
    with MicroBatch(isolated_settings) as batch:
        yield batch
    close_probers()


def drain(batch: MicroBatch) -> None:
    for _ in range(20):
        result = batch.run()
        assert result.success, result.summary_lines()
        if not result.records:
            return
    raise AssertionError("the pipeline did not drain in 20 micro-batches")


def test_stitched_identities_through_the_pipeline(isolated_settings, batch):
    settings = isolated_settings
    summary = seed(settings, customers=80, days=30, now=NOW, identity=True)
    assert summary.weblogs > 0
    drain(batch)
    con = batch.con
    anonymous, attributed = con.execute(
        "select count(*), count(*) filter (where customer_id is not null)"
        " from intermediate.int_anonymous_weblog_rollup"
    ).fetchone()
    assert anonymous > 0 and attributed > 0

    # Live: customer 7 browses anonymously on a new cookie and meets an error; then logs in.
    email = mongo_db(settings).users.find_one({"id": 7})["email"]
    error = {
        "event_id": "live-anon-1", "anonymous_id": "cookie-live", "page": "cart.html",
        "date": "2026-06-01T12:05:00.000+00:00", "error_message": "Live stitching error",
    }  # fmt: skip
    produce(settings, "weblogs", [json.dumps(error)], key=b"cookie-live")
    drain(batch)
    assert con.execute(
        "select count(*) from marts.customer_recent_errors where error_message = ?",
        [error["error_message"]],
    ).fetchone() == (0,)  # nobody logged in with that cookie yet
    login = {
        "event_id": "live-login-1", "user_id": 7, "anonymous_id": "cookie-live",
        "page": "login_success.html", "date": "2026-06-01T12:06:00.000+00:00",
    }  # fmt: skip
    produce(settings, "weblogs", [json.dumps(login)], key=b"cookie-live")
    mongo_db(settings).instore_orders.insert_one(
        {
            "customer_email": f"  {email.upper()} ",
            "date": NOW,
            "items": [{"product_name": "Live Scarf", "price": 20, "quantity": 1}],
            "store": {"store_id": "S1", "name": "Central", "city": "Leeds"},
        }
    )
    drain(batch)
    assert con.execute(
        "select customer_id from marts.customer_recent_errors where error_message = ?",
        [error["error_message"]],
    ).fetchall() == [(7,)]
    assert con.execute(
        "select count(*) from marts.customer_popular_items"
        " where customer_id = 7 and product_name = 'LIVE SCARF'"
    ).fetchone() == (1,)
    assert ("anonymous_id", "cookie-live") in con.execute(
        "select identifier_type, identifier from marts.customer_identities where customer_id = 7"
    ).fetchall()

    expected = expected_marts(read_sources(settings, con))  # (con: the users change history)
    assert compare_marts(expected, marts_rows(con), "oracle vs marts").examples == []
    report = reconcile(batch)
    assert report.matches, report.summary_lines()
