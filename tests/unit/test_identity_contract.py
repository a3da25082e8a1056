"""The landing contract's identity fields and the unattributed counts the stream reports."""

from __future__ import annotations

import json

import duckdb

from dagster_project.identity import unattributed_metadata
from extractors.kafka_source import quarantine_reason


def weblog(**fields) -> bytes:
    record = {"event_id": "e1", "date": "2026-06-01T10:00:00.000+00:00", "page": "home.html"}
    return json.dumps({**record, **fields}).encode()


def test_a_weblog_needs_a_user_id_or_an_anonymous_id() -> None:
    assert quarantine_reason("weblogs", weblog(user_id=1)) is None
    assert quarantine_reason("weblogs", weblog(anonymous_id="cookie-1")) is None
    assert quarantine_reason("weblogs", weblog(user_id=1, anonymous_id="cookie-1")) is None
    for bad in (weblog(), weblog(user_id=None, anonymous_id=None)):
        assert quarantine_reason("weblogs", bad) == (
            "missing required field: one of user_id or anonymous_id"
        )
    # Present but empty or ill-typed: landed, and rejected by staging with the reason (as a
    # weblog with a bad user_id was before anonymous ids existed).
    for staged in (weblog(anonymous_id=""), weblog(user_id=""), weblog(user_id="abc")):
        assert quarantine_reason("weblogs", staged) is None


def test_marketing_emails_still_need_a_user_id() -> None:
    email = {"email_id": "m1", "date": "x", "updated_at": "x", "recipient_email": "a@b.c"}
    assert quarantine_reason("marketing_emails", json.dumps(email).encode()) == (
        "missing required field(s): user_id"
    )


def test_unattributed_counts_as_metadata() -> None:
    con = duckdb.connect()
    assert unattributed_metadata(con) == {}  # a warehouse older than identity stitching
    con.execute("create schema intermediate")
    con.execute(
        "create view intermediate.int_unattributed_activity as"
        " select 'anonymous_weblog_events' as kind, 7 as records, 3 as identifiers"
    )
    metadata = {key: value.value for key, value in unattributed_metadata(con).items()}
    assert metadata == {
        "unattributed/anonymous_weblog_events": 7,
        "unattributed/anonymous_weblog_events_ids": 3,
        "unattributed/guest_orders_unmatched_email": 0,
        "unattributed/guest_orders_unmatched_email_ids": 0,
        "unattributed/guest_orders_ambiguous_email": 0,
        "unattributed/guest_orders_ambiguous_email_ids": 0,
    }
