"""The chaos oracle's identity and audience rules on tiny hand-made sources (no services)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from customer360.chaos.audience_oracle import audience_definitions, expected_members
from customer360.chaos.identity_oracle import (
    address_owner,
    address_periods,
    expected_identities,
    user_change,
)
from customer360.chaos.oracle import KafkaMessage, SourceData, expected_marts

T = datetime(2026, 3, 1, 12, 0)


def at(minutes: int) -> datetime:
    return T + timedelta(minutes=minutes)


def change(key: str, customer_id: int, email: str | None, minutes: int, seq: int):
    document = None if email is None else {"id": customer_id, "email": email}
    operation = "delete" if email is None else "update"
    return user_change(key, operation, json.dumps(document), seq, at(minutes), seq)


def test_an_email_change_moves_later_guest_sales_only_and_a_shared_address_matches_nobody():
    changes = [
        change("a", 1, " Ann@Example.com", 0, 1),  # Ann's first address holds before it too
        change("a", 1, "ann@new.example", 10, 2),
        change("b", 2, "bob@example.com", 0, 3),
        change("c", 3, "cy@example.com", 0, 4),
        change("c", 3, "BOB@example.com", 20, 5),  # a second holder of Bob's address from 20
        change("c", 3, None, 30, 6),  # ... until that customer is deleted
    ]
    periods = address_periods(changes)
    assert address_owner("ann@example.com", at(-100), periods) == 1
    assert address_owner(" ANN@example.com ", at(9), periods) == 1
    assert address_owner("ann@example.com", at(10), periods) is None  # moved on
    assert address_owner("ann@new.example", at(10), periods) == 1
    assert address_owner("bob@example.com", at(19), periods) == 2
    assert address_owner("bob@example.com", at(25), periods) is None  # ambiguous
    assert address_owner("bob@example.com", at(30), periods) == 2
    assert address_owner("", at(0), periods) is None
    # A document staging rejects (no integer id) holds nothing.
    assert user_change("x", "update", json.dumps({"id": "x1", "email": "a@b.c"}), 1, T, 1) is None


def test_identities_list_every_identifier_with_first_and_last_seen():
    customers = {1: {"created_at": at(0), "updated_at": at(50)}, 2: {"created_at": at(5)}}
    changes = [change("a", 1, "Ann@Example.com", 0, 1), change("a", 1, "ann@new.example", 10, 2)]
    rows = expected_identities(
        customers,
        changes,
        guest_sales=[(1, "ann@example.com", at(3)), (1, "ann@example.com", at(-5))],
        email_recipients=[(2, "bee@example.com", at(7))],
        logins=[(1, "anon-1", at(20)), (9, "anon-1", at(21))],  # 9 does not exist
        stitched_events=[(1, "anon-1", at(15)), (2, "anon-1", at(40))],
    )
    assert rows == {
        (1, "customer_id", "1", at(0), at(50)),
        (2, "customer_id", "2", at(5), at(5)),
        (1, "email", "ann@example.com", at(-5), at(3)),
        (1, "email", "ann@new.example", at(10), at(10)),
        (2, "email", "bee@example.com", at(7), at(7)),
        (1, "anonymous_id", "anon-1", at(15), at(20)),
        (2, "anonymous_id", "anon-1", at(40), at(40)),
    }


def profile(customer_id: int, **columns):
    return {"customer_id": customer_id, "total_orders": 0, "instore_orders": 0,
            "total_amount_spent": Decimal(0), **columns}  # fmt: skip


def test_audiences_are_the_reviewed_conditions_with_consent_for_email():
    today = date(2026, 3, 1)
    long_ago = datetime(2025, 9, 1)
    profiles = [
        # at_risk_high_value (email): sales worth 300+, none for 90 days; only 1 consents
        profile(1, total_orders=3, total_amount_spent=Decimal("450.00"),
                last_online_order_at=long_ago, lifetime_value=Decimal("450.00"),
                days_since_last_order=181, email_consent="granted"),
        profile(2, total_orders=3, total_amount_spent=Decimal("450.00"),
                last_online_order_at=long_ago, lifetime_value=Decimal("450.00"),
                days_since_last_order=181, email_consent="withdrawn"),
        # 450 placed, but refunded: no sale, in no audience
        profile(8, total_orders=1, total_amount_spent=Decimal("450.00"),
                last_online_order_at=long_ago, lifetime_value=Decimal("0"),
                email_consent="granted"),
        # browsed_never_bought (email): a visit in the last 30 days, no order
        profile(3, last_website_visit_at=datetime(2026, 2, 20), email_consent="granted"),
        profile(4, last_website_visit_at=datetime(2026, 1, 1), email_consent="granted"),
        # lapsed_instore_buyers (no consent needed): in store, nothing for 180 days
        profile(5, total_orders=1, instore_orders=1, last_instore_order_at=long_ago,
                total_amount_spent=Decimal("20"), lifetime_value=Decimal("20"),
                days_since_last_order=181),
        # checkout_errors_recent: the latest error on the checkout in the last 7 days
        profile(6, latest_error_at=datetime(2026, 2, 27), latest_error_page="checkout.html"),
        profile(7, latest_error_at=datetime(2026, 2, 27), latest_error_page="product/x.html"),
    ]  # fmt: skip
    names = {a["name"] for a in audience_definitions()}
    assert {"at_risk_high_value", "browsed_never_bought", "lapsed_instore_buyers"} <= names
    members = expected_members(profiles, today)
    assert members == {
        ("at_risk_high_value", 1),
        ("browsed_never_bought", 3),
        ("lapsed_instore_buyers", 5),
        ("checkout_errors_recent", 6),
    }
    custom = [{"name": "big", "channel": "none", "condition": "total_amount_spent >= 400"}]
    assert expected_members(profiles, today, custom) == {("big", 1), ("big", 2), ("big", 8)}


def _weblog(offset: int, event_id: str, page: str, minutes: int, user_id=None, device=None):
    value = {"event_id": event_id, "date": at(minutes).replace(tzinfo=UTC).isoformat(),
             "page": page, "action": "view", "error_message": None}  # fmt: skip
    if user_id is not None:
        value["user_id"] = user_id
    if device is not None:
        value["anonymous_id"] = device
    return KafkaMessage("weblogs", 0, offset, None, json.dumps(value).encode())


def test_expected_marts_stitch_browsing_and_guest_sales_into_identities_and_audiences():
    users = [
        {"_id": "a", "id": 1, "email": "ann@example.com", "created_at": at(-60),
         "updated_at": at(-60), "consent": {"email": {"status": "granted", "at": at(-60)}}},
        {"_id": "b", "id": 2, "email": "bob@example.com", "created_at": at(-60),
         "updated_at": at(-60)},
    ]  # fmt: skip
    guest = {"_id": "o1", "customer_email": " ANN@example.com", "date": at(-30),
             "items": [{"product_name": "Tee", "category": "Tops", "price": 20.0,
                        "quantity": 1}], "store": {}}  # fmt: skip
    weblogs = [
        _weblog(0, "e1", "home.html", -5, device="anon-1"),  # before Bob's login: his
        _weblog(1, "e2", "login_success.html", -4, user_id=2, device="anon-1"),
        _weblog(2, "e3", "home.html", -3, device="anon-9"),  # nobody logged in: unattributed
    ]
    data = SourceData(
        messages={"weblogs": weblogs, "marketing_emails": []},
        documents={"users": users, "online_orders": [], "instore_orders": [guest]},
    )
    marts = expected_marts(data)
    assert (1, "Instore", 1, 1, Decimal("1.00"), Decimal("20.000000")) in marts[
        "customer_purchase_stats"
    ]
    identities = marts["customer_identities"]
    # The users document (no landed history here: at its updated_at) and the guest sale.
    assert (1, "email", "ann@example.com", at(-60), at(-30)) in identities
    assert (2, "anonymous_id", "anon-1", at(-5), at(-4)) in identities
    assert not any(row[2] == "anon-9" for row in identities)
    # Bob browsed (anonymously, stitched) and never bought; no consent: not in the email one.
    assert ("browsed_never_bought", 2) not in marts["customer_audiences"]
    assert all(customer_id in (1, 2) for _, customer_id in marts["customer_audiences"])
