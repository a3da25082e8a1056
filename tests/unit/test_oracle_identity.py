"""The chaos oracle's identity stitching, on the cases of the hand-checked dbt fixture
(tests/test_dbt_identity_hand_checked.py), worked out the same way."""

from __future__ import annotations

import json
from datetime import datetime

from customer360.chaos.oracle import guest_sale_owner, kafka_record, stitch_anonymous


def weblog(event_id: str, at: str, user_id=None, anonymous_id=None, page="home.html") -> dict:
    value = {"event_id": event_id, "date": at + "+00:00", "page": page}
    if user_id is not None:
        value["user_id"] = user_id
    if anonymous_id is not None:
        value["anonymous_id"] = anonymous_id
    return kafka_record("weblogs", json.dumps(value).encode())


def test_anonymous_events_go_to_the_latest_login_before_them_or_the_first() -> None:
    login = "login_success.html"
    weblogs = [
        weblog("a1", "2026-06-01T09:00:00", anonymous_id="dev-shared"),
        weblog("l1", "2026-06-01T10:00:00", 1, "dev-shared", login),
        weblog("a2", "2026-06-01T10:30:00", anonymous_id="dev-shared"),
        weblog("l2", "2026-06-01T11:00:00", 2, "dev-shared", login),
        weblog("l4", "2026-06-01T11:15:00", 1, "dev-shared", login),
        weblog("a3", "2026-06-01T11:30:00", anonymous_id="dev-shared"),
        weblog("a6", "2026-06-01T12:00:00", anonymous_id="dev-nobody"),
    ]
    assert weblogs[0]["customer_id"] is None and weblogs[0]["date"] == datetime(2026, 6, 1, 9)
    assert stitch_anonymous(weblogs) == {"a1": 1, "a2": 1, "a3": 1}


def test_records_without_an_identifier_or_with_a_bad_user_id_are_rejected() -> None:
    assert weblog("x", "2026-06-01T09:00:00") is None
    assert weblog("x", "2026-06-01T09:00:00", user_id="abc", anonymous_id="d") is None
    assert weblog("x", "2026-06-01T09:00:00", anonymous_id="  ") is None


def test_guest_sales_match_one_current_address_trimmed_and_case_insensitive() -> None:
    addresses = {"alice@example.com": {1}, "bob@example.com": {2, 3}}
    assert guest_sale_owner({"customer_email": " ALICE@Example.com "}, addresses) == 1
    assert guest_sale_owner({"customer_email": "bob@example.com"}, addresses) is None
    assert guest_sale_owner({"customer_email": "nobody@example.com"}, addresses) is None
    assert guest_sale_owner({}, addresses) is None
