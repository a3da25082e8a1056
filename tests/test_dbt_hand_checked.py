"""A few customers whose marts were worked out by hand, built in two incremental batches.

Batch 1 (Mongo changes at 2026-05-01 08:00): customers 1 Alice, 2 Bob, 3 Carol; orders; weblogs
(a duplicate event, an offset time, bad records, an unknown customer 99); emails with the click
of m1 landing before its open. Batch 2 (Mongo changes at 2026-05-09 12:00): Bob moves to Nice,
Bob's online order o3 and customer Carol are deleted, m1's open and m3's open land.

By hand:
- Alice, online: o1 = 49.99 x 1 + 80 x 2 = 209.99 (2 items), o2 = 50 x 1 (1 item)
  -> 2 orders, 3 items, 1.50 per order, 259.99; in store: s1 = 15.5 x 2 -> 1, 1, 1.00, 31.00.
  Products: RED SHIRT 2 (o1, o2 as 'red shirt'), BLUE JEANS 1, GREEN HAT 1 -> favourite RED SHIRT.
  Errors: Payment failed on cart.html at 08:05 and 08:10 (w3 twice: one event) -> 2, last
  08:10; Timeout on pay.html at 09:00+02:00 = 07:00 UTC -> 1. Latest error: Payment failed.
  as_of = latest source time = m2 sent 2026-05-08 09:00.
- Bob: o3 deleted -> no online row; s2 = 80 x 1 + 4.25 x 4 = 97.00 (2 items). Products BLUE
  JEANS 1 and WHITE SOCKS 1 at the same time -> favourite BLUE JEANS (name A-Z). as_of = his
  users change and o3's delete at 2026-05-09 12:00.
- Carol is deleted: in no mart. Customer 99 has no users document: in no mart.

Traits (customer_traits; the day-relative ones counted from today, as the view does):
- Alice: 3 orders (1, 2 and 3 May), 290.99 -> average 96.9966 -> 97.00; online (2 orders to
  1); Tops 2 lines (o1, o2) over Bottoms and Accessories 1 each; F3 (3 orders), M3 (>= 200).
- Bob: 1 order (s2, 5 May; o3 is deleted), 97.00; instore; Bottoms and Accessories 1 line
  each -> Bottoms (80.00 spent over 17.00); F1, M1 (< 100).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from customer360.serving.profile_traits import TRAIT_COLUMNS
from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding, utc


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def age_today(dob: dt.date) -> int:
    today = dt.datetime.now(dt.UTC).date()
    return today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("hand-checked")
    path = tmp_path / "warehouse.duckdb"
    raw = RawLanding([path])

    raw.now = utc("2026-05-01T08:00:00")
    raw.user(
        "snapshot",
        1,
        1,
        first_name="Alice",
        last_name="Martin",
        gender="F",
        dob="1990-05-01",
        city="Paris",
        country="France",
        email="alice@example.com",
    )
    raw.user(
        "snapshot",
        2,
        2,
        first_name="Bob",
        last_name="Stone",
        gender="M",
        dob="1985-12-31",
        city="Lyon",
        country="France",
        email="bob@example.com",
    )
    raw.user("snapshot", 3, 3, first_name="Carol", dob="1970-01-01")
    raw.order(
        "Online",
        "insert",
        101,
        1,
        utc("2026-05-01T10:00:00"),
        [("Red Shirt", "Tops", 49.99, 1), ("Blue Jeans", "Bottoms", 80, 2)],
    )
    raw.order(
        "Online", "insert", 102, 1, utc("2026-05-02T10:00:00"), [("red shirt", "Tops", 50, 1)]
    )
    raw.order(
        "Instore",
        "insert",
        201,
        1,
        utc("2026-05-03T15:00:00"),
        [("Green Hat", "Accessories", 15.5, 2)],
    )
    raw.order("Online", "insert", 103, 2, utc("2026-05-04T09:00:00"), [("Hat", "Acc", 20, 1)])
    raw.order(
        "Instore",
        "insert",
        202,
        2,
        utc("2026-05-05T11:00:00"),
        [("Blue Jeans", "Bottoms", 80, 1), ("White Socks", "Accessories", 4.25, 4)],
    )
    raw.order(
        "Instore", "insert", 203, 3, utc("2026-05-05T12:00:00"), [("Blue Jeans", "Bottoms", 80, 1)]
    )
    raw.weblog("w1", 1, utc("2026-05-06T08:00:00"), page="login_success.html")
    raw.weblog(
        "w2", 1, utc("2026-05-06T08:05:00"), page="cart.html", error_message="Payment failed"
    )
    raw.weblog(
        "w3", 1, utc("2026-05-06T08:10:00"), page="cart.html", error_message="Payment failed"
    )
    raw.weblog("w4", 1, "not a date", page="cart.html", error_message="Payment failed")
    raw.weblog("w5", 1, "2026-05-06T09:00:00.000+02:00", page="pay.html", error_message="Timeout")
    raw.weblog("w6", 2, utc("2026-05-06T12:00:00"), page="home.html")
    raw.weblog("w7", 99, utc("2026-05-06T12:00:00"), page="login_success.html")
    raw.weblog("w8", "abc", utc("2026-05-06T12:00:00"), page="home.html")
    raw.weblog("w9", 3, utc("2026-05-20T12:00:00"), page="home.html", error_message="Oops")
    raw.email("m1", 1, utc("2026-05-07T09:00:00"))
    raw.email(
        "m1",
        1,
        utc("2026-05-07T09:00:00"),
        opened=True,
        clicked=True,
        updated_at=utc("2026-05-07T11:00:00"),
    )
    raw.email("m2", 1, utc("2026-05-08T09:00:00"))
    raw.email("m3", 2, utc("2026-05-07T09:30:00"))
    raw.land()
    # Models only: the data tests and unit tests run once, in the second build.
    run_dbt(path, "run", work_dir=tmp_path)

    raw.now = utc("2026-05-09T12:00:00")
    raw.user(
        "update",
        2,
        2,
        first_name="Bob",
        last_name="Stone",
        gender="M",
        dob="1985-12-31",
        city="Nice",
        country="France",
        email="bob@example.com",
    )
    raw.order("Online", "delete", 103)
    raw.user("delete", 3, 3)
    raw.weblog(
        "w3",
        1,
        utc("2026-05-06T08:10:00"),
        page="cart.html",
        error_message="Payment failed",
        partition=2,
    )
    raw.email(
        "m1", 1, utc("2026-05-07T09:00:00"), opened=True, updated_at=utc("2026-05-07T10:00:00")
    )
    raw.email(
        "m3", 2, utc("2026-05-07T09:30:00"), opened=True, updated_at=utc("2026-05-09T08:00:00")
    )
    raw.land()
    run_dbt(path, "build", work_dir=tmp_path)
    return path


def rows(warehouse: Path, query: str) -> list[dict]:
    with duckdb.connect(str(warehouse)) as con:
        cursor = con.execute(query)
        columns = [description[0] for description in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def test_customer_details(warehouse: Path) -> None:
    assert rows(warehouse, "select * from marts.customer_details order by customer_id") == [
        {
            "customer_id": 1,
            "first_name": "Alice",
            "last_name": "Martin",
            "email": "alice@example.com",
            "gender": "F",
            "dob": dt.date(1990, 5, 1),
            "age": age_today(dt.date(1990, 5, 1)),
            "city": "Paris",
            "country": "France",
        },
        {
            "customer_id": 2,
            "first_name": "Bob",
            "last_name": "Stone",
            "email": "bob@example.com",
            "gender": "M",
            "dob": dt.date(1985, 12, 31),
            "age": age_today(dt.date(1985, 12, 31)),
            "city": "Nice",
            "country": "France",
        },
    ]


def test_customer_purchase_stats(warehouse: Path) -> None:
    query = """
        select customer_id, channel, number_of_orders, number_of_items_purchased,
               items_per_order, amount_spent
        from marts.customer_purchase_stats order by customer_id, channel
    """
    assert rows(warehouse, query) == [
        {
            "customer_id": 1,
            "channel": "Instore",
            "number_of_orders": 1,
            "number_of_items_purchased": 1,
            "items_per_order": Decimal("1.00"),
            "amount_spent": Decimal("31.00"),
        },
        {
            "customer_id": 1,
            "channel": "Online",
            "number_of_orders": 2,
            "number_of_items_purchased": 3,
            "items_per_order": Decimal("1.50"),
            "amount_spent": Decimal("259.99"),
        },
        {
            "customer_id": 2,
            "channel": "Instore",
            "number_of_orders": 1,
            "number_of_items_purchased": 2,
            "items_per_order": Decimal("2.00"),
            "amount_spent": Decimal("97.00"),
        },
    ]


def test_customer_popular_items(warehouse: Path) -> None:
    query = """
        select customer_id, product_name, purchases, last_purchased_at
        from marts.customer_popular_items order by customer_id, product_name
    """
    assert rows(warehouse, query) == [
        {
            "customer_id": 1,
            "product_name": "BLUE JEANS",
            "purchases": 1,
            "last_purchased_at": at("2026-05-01T10:00:00"),
        },
        {
            "customer_id": 1,
            "product_name": "GREEN HAT",
            "purchases": 1,
            "last_purchased_at": at("2026-05-03T15:00:00"),
        },
        {
            "customer_id": 1,
            "product_name": "RED SHIRT",
            "purchases": 2,
            "last_purchased_at": at("2026-05-02T10:00:00"),
        },
        {
            "customer_id": 2,
            "product_name": "BLUE JEANS",
            "purchases": 1,
            "last_purchased_at": at("2026-05-05T11:00:00"),
        },
        {
            "customer_id": 2,
            "product_name": "WHITE SOCKS",
            "purchases": 1,
            "last_purchased_at": at("2026-05-05T11:00:00"),
        },
    ]


def test_customer_activity(warehouse: Path) -> None:
    query = "select customer_id, event, last_at from marts.customer_activity order by all"
    expected = {
        (1, "Email Clicked"): "2026-05-07T11:00:00",
        (1, "Email Opened"): "2026-05-07T10:00:00",
        (1, "Email Sent"): "2026-05-08T09:00:00",
        (1, "Instore Order"): "2026-05-03T15:00:00",
        (1, "Online Order"): "2026-05-02T10:00:00",
        (1, "Website Login"): "2026-05-06T08:00:00",
        (1, "Website Visit"): "2026-05-06T08:10:00",
        (2, "Email Opened"): "2026-05-09T08:00:00",
        (2, "Email Sent"): "2026-05-07T09:30:00",
        (2, "Instore Order"): "2026-05-05T11:00:00",
        (2, "Website Visit"): "2026-05-06T12:00:00",
    }
    assert rows(warehouse, query) == [
        {"customer_id": customer, "event": event, "last_at": at(time)}
        for (customer, event), time in sorted(expected.items())
    ]


def test_customer_recent_errors(warehouse: Path) -> None:
    query = """
        select customer_id, error_message, page, last_at, occurrences
        from marts.customer_recent_errors order by all
    """
    assert rows(warehouse, query) == [
        {
            "customer_id": 1,
            "error_message": "Payment failed",
            "page": "cart.html",
            "last_at": at("2026-05-06T08:10:00"),
            "occurrences": 2,
        },
        {
            "customer_id": 1,
            "error_message": "Timeout",
            "page": "pay.html",
            "last_at": at("2026-05-06T07:00:00"),
            "occurrences": 1,
        },
    ]


TRAITS_SQL = ", ".join(TRAIT_COLUMNS)


def days_ago(day: dt.date) -> int:
    return (dt.datetime.now(dt.UTC).date() - day).days


def recency_score(days: int) -> int:
    """rfm_thresholds: within 30 days 5, 90 4, 180 3, 365 2, else 1."""
    return next(
        (score for score, within in ((5, 30), (4, 90), (3, 180), (2, 365)) if days < within), 1
    )


def lifecycle(first: dt.date, last: dt.date) -> str:
    if days_ago(first) < 30:
        return "new"
    return "active" if days_ago(last) < 90 else "at risk" if days_ago(last) < 365 else "lapsed"


def test_customer_traits(warehouse: Path) -> None:
    alice_last, bob_last = dt.date(2026, 5, 3), dt.date(2026, 5, 5)
    # rfm_segments by recency score, for F3 M3 (Alice) and F1 M1 (Bob).
    alice_segment = {5: "Loyal", 4: "Loyal", 3: "Loyal", 2: "At risk", 1: "At risk"}
    bob_segment = {5: "New", 4: "Promising", 3: "Need attention", 2: "Hibernating", 1: "Lost"}
    alice_dates = [dt.date(2026, 5, 1), dt.date(2026, 5, 2), alice_last]
    assert rows(
        warehouse,
        f"select customer_id, {TRAITS_SQL} from marts.customer_traits order by 1",
    ) == [
        {
            "customer_id": 1,
            "lifetime_value": Decimal("290.99"),
            "average_order_value": Decimal("97.00"),
            "orders_last_30_days": sum(days_ago(d) < 30 for d in alice_dates),
            "orders_last_90_days": sum(days_ago(d) < 90 for d in alice_dates),
            "orders_last_365_days": sum(days_ago(d) < 365 for d in alice_dates),
            "days_since_last_order": days_ago(alice_last),
            "first_order_date": dt.date(2026, 5, 1),
            "preferred_channel": "online",
            "preferred_category": "Tops",
            "recency_score": recency_score(days_ago(alice_last)),
            "frequency_score": 3,
            "monetary_score": 3,
            "rfm_segment": alice_segment[recency_score(days_ago(alice_last))],
            "lifecycle_stage": lifecycle(dt.date(2026, 5, 1), alice_last),
        },
        {
            "customer_id": 2,
            "lifetime_value": Decimal("97.00"),
            "average_order_value": Decimal("97.00"),
            "orders_last_30_days": int(days_ago(bob_last) < 30),
            "orders_last_90_days": int(days_ago(bob_last) < 90),
            "orders_last_365_days": int(days_ago(bob_last) < 365),
            "days_since_last_order": days_ago(bob_last),
            "first_order_date": bob_last,
            "preferred_channel": "instore",
            "preferred_category": "Bottoms",
            "recency_score": recency_score(days_ago(bob_last)),
            "frequency_score": 1,
            "monetary_score": 1,
            "rfm_segment": bob_segment[recency_score(days_ago(bob_last))],
            "lifecycle_stage": lifecycle(bob_last, bob_last),
        },
    ]
    # customer_360 shows the same columns.
    assert rows(
        warehouse,
        f"select customer_id, {TRAITS_SQL} from marts.customer_360 order by 1",
    ) == rows(
        warehouse,
        f"select customer_id, {TRAITS_SQL} from marts.customer_traits order by 1",
    )


def test_customer_360(warehouse: Path) -> None:
    query = f"select * exclude ({TRAITS_SQL}) from marts.customer_360 order by customer_id"
    assert rows(warehouse, query) == [
        {
            "customer_id": 1,
            "first_name": "Alice",
            "last_name": "Martin",
            "email": "alice@example.com",
            "gender": "F",
            "dob": dt.date(1990, 5, 1),
            "age": age_today(dt.date(1990, 5, 1)),
            "city": "Paris",
            "country": "France",
            "online_orders": 2,
            "online_items_purchased": 3,
            "online_amount_spent": Decimal("259.99"),
            "instore_orders": 1,
            "instore_items_purchased": 1,
            "instore_amount_spent": Decimal("31.00"),
            "total_orders": 3,
            "total_items_purchased": 4,
            "total_amount_spent": Decimal("290.99"),
            "favourite_product": "RED SHIRT",
            "favourite_product_purchases": 2,
            "last_instore_order_at": at("2026-05-03T15:00:00"),
            "last_online_order_at": at("2026-05-02T10:00:00"),
            "last_email_sent_at": at("2026-05-08T09:00:00"),
            "last_email_opened_at": at("2026-05-07T10:00:00"),
            "last_email_clicked_at": at("2026-05-07T11:00:00"),
            "last_website_visit_at": at("2026-05-06T08:10:00"),
            "last_website_login_at": at("2026-05-06T08:00:00"),
            "latest_error_message": "Payment failed",
            "latest_error_page": "cart.html",
            "latest_error_at": at("2026-05-06T08:10:00"),
            "as_of": at("2026-05-08T09:00:00"),
            "email_consent": "unknown",  # no consent in the documents
            "email_consent_since": None,
        },
        {
            "customer_id": 2,
            "first_name": "Bob",
            "last_name": "Stone",
            "email": "bob@example.com",
            "gender": "M",
            "dob": dt.date(1985, 12, 31),
            "age": age_today(dt.date(1985, 12, 31)),
            "city": "Nice",
            "country": "France",
            "online_orders": 0,
            "online_items_purchased": 0,
            "online_amount_spent": Decimal("0"),
            "instore_orders": 1,
            "instore_items_purchased": 2,
            "instore_amount_spent": Decimal("97.00"),
            "total_orders": 1,
            "total_items_purchased": 2,
            "total_amount_spent": Decimal("97.00"),
            "favourite_product": "BLUE JEANS",
            "favourite_product_purchases": 1,
            "last_instore_order_at": at("2026-05-05T11:00:00"),
            "last_online_order_at": None,
            "last_email_sent_at": at("2026-05-07T09:30:00"),
            "last_email_opened_at": at("2026-05-09T08:00:00"),
            "last_email_clicked_at": None,
            "last_website_visit_at": at("2026-05-06T12:00:00"),
            "last_website_login_at": None,
            "latest_error_message": None,
            "latest_error_page": None,
            "latest_error_at": None,
            "as_of": at("2026-05-09T12:00:00"),
            "email_consent": "unknown",  # no consent in the documents
            "email_consent_since": None,
        },
    ]


def test_rejected_records_are_listed_not_built(warehouse: Path) -> None:
    query = "select source, position, reason from staging.stg_rejected_records order by all"
    assert rows(warehouse, query) == [
        {"source": "weblogs", "position": "weblogs/0@3", "reason": "date is not a timestamp"},
        {"source": "weblogs", "position": "weblogs/0@7", "reason": "user_id is not an integer"},
    ]


def test_marts_are_the_relations_consumers_read(warehouse: Path) -> None:
    query = """
        select table_schema, table_name, table_type from information_schema.tables
        where table_schema = 'marts' order by table_name
    """
    assert [(row["table_name"], row["table_type"]) for row in rows(warehouse, query)] == [
        ("audience_changes", "BASE TABLE"),
        ("audience_definitions", "VIEW"),
        ("customer_360", "VIEW"),
        ("customer_360_base", "BASE TABLE"),
        ("customer_activity", "VIEW"),
        ("customer_audiences", "VIEW"),
        ("customer_category_purchases", "BASE TABLE"),
        ("customer_consent", "BASE TABLE"),
        ("customer_details", "VIEW"),
        ("customer_identities", "BASE TABLE"),
        ("customer_order_days", "BASE TABLE"),
        ("customer_popular_items", "BASE TABLE"),
        ("customer_propensity", "BASE TABLE"),
        ("customer_purchase_stats", "VIEW"),
        ("customer_recent_errors", "VIEW"),
        ("customer_traits", "VIEW"),
    ]
