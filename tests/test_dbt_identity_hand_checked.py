"""Identity stitching on a fixture whose outcome was worked out by hand, in three incremental
batches (the rules: dbt/README.md, "Identity stitching").

Customers 1 Alice (alice@example.com), 2 Bob (bob@example.com), 3 Dana (dana@example.com);
users snapshot at 2026-06-01 08:00 (batch 1), changes at 2026-06-05 08:00 (batch 2) and
2026-06-07 08:00 (batch 3).

Batch 1:
- Shared device `dev-shared`: a1 anonymous 09:00, error Timeout on pay.html; Alice logs in
  (user_id 1 + anonymous_id) 10:00; a2 anonymous 10:30 home.html; Bob logs in 11:00; a3 anonymous
  11:30, error Payment failed on cart.html.
  -> a1 is before any login: the first to log in, Alice. a2: latest login at or before 10:30
  is Alice's. a3: latest login before 11:30 is Bob's.
- `dev-late`: a4 anonymous 09:00 error Oops on search.html, a5 anonymous 09:05 home.html; no
  login yet -> unattributed (2 events, 1 id).
- `dev-nobody`: a6 anonymous 12:00 -> unattributed for good.
- A weblog with neither user_id nor anonymous_id -> rejected.
- Guest till sales: s1 ' ALICE@Example.com ' 06-01 12:00 Scarf 20 x 1 -> Alice (trimmed,
  case-insensitive); s2 'nobody@example.com' -> unmatched. An in-store order with neither
  user_id nor customer_email -> rejected.
- Marketing email m1 to customer 1, recipient alice@example.com, sent 06-01 09:00.

Batch 2:
- Dana logs in on dev-late 06-02 10:00 -> a4, a5 (before any login) become Dana's,
  retroactively.
- A late login of Alice on dev-shared at 06-01 11:15 -> a3 (11:30) moves from Bob to Alice:
  Bob has no stitched event left, so no error.
- Alice changes her email to alice.new@example.com (06-05 08:00); Dana changes hers to
  bob@example.com (now held by Bob and Dana).
- Guest orders: s3 alice@example.com 06-06 09:00 -> unmatched (the address left Alice on
  06-05: a change moves future matches only); s4 'Alice.New@example.com' 06-06 10:00 Gloves 15
  x 2 -> Alice; s5 alice@example.com dated 06-03 09:00 (before the change) Scarf 20 x 1 ->
  Alice; s6 bob@example.com 06-06 -> two holders, ambiguous.

After batch 2, Alice had s1 + s4 + s5 (3 orders, 70.00, favourite SCARF) and Bob none.

Batch 3: two guest sales leave Alice, and nothing else of hers changes (the customer an order
leaves must be recomputed in the same batch, like the one it goes to):
- s5's address is corrected to bob@example.com: on 06-03 only Bob held it (Dana took it on
  06-05) -> Bob's.
- s1 gains user_id 2 and drops its address -> Bob's by user_id.
- Dana takes dana@example.com back (06-07 08:00): bob@example.com is Bob's alone again for
  later sales, so s7 bob@example.com 06-07 09:00 Hat 10 x 1 -> Bob; s6 (06-06, when both
  held it) stays ambiguous.

By hand, after batch 3:
- Alice: in store s4 only: 1 order, 1 line, 30.00; GLOVES 1 (06-06 10:00) -> favourite
  GLOVES; last in-store order 06-06 10:00. Errors Payment failed/cart.html 11:30 (1) and
  Timeout/pay.html 09:00 (1); latest Payment failed. Last visit 11:30 (a3), last login
  11:15. Identities: customer_id 1 (created 2025-01-01 .. updated 06-05 08:00);
  alice@example.com (users 06-01 08:00, m1 09:00; s1 and s5 no longer hers -> 06-01 08:00
  .. 09:00); alice.new@example.com (users 06-05 08:00, s4 06-06 10:00); dev-shared (a1
  09:00 .. a3 11:30, logins 10:00 and 11:15 inside).
- Bob: in store s1 (06-01 12:00, by user_id) + s5 (06-03 09:00) + s7 (06-07 09:00) = 3
  orders, 3 lines, 20 + 20 + 10 = 50.00; SCARF 2 (last 06-03 09:00), HAT 1 -> favourite
  SCARF; last in-store order 06-07 09:00. No error; last visit = last login = 11:00.
  Identities: customer_id 2 (2025-01-01 .. 06-01 08:00), bob@example.com (users 06-01
  08:00, s5 06-03 09:00, s7 06-07 09:00 -> 06-01 08:00 .. 06-07 09:00), dev-shared (login
  11:00).
- Dana: error Oops/search.html 06-01 09:00 (1); last visit 06-02 10:00 (her login). Identities:
  customer_id 3 (.. 06-07 08:00), dana@example.com (06-01 08:00 .. 06-07 08:00),
  bob@example.com (06-05 08:00), dev-late (a4 06-01 09:00 .. login 06-02 10:00).
- Who each guest sale can concern (`_customer_ids`: everyone who ever held an address it
  ever carried): s1 [1] (alice@), s3 [1], s4 [1], s5 [1, 2, 3] (alice@; bob@, held by Bob
  and Dana), s6 and s7 [2, 3], s2 none.
- Unattributed: 1 anonymous event (a6, 1 id); 2 unmatched guest orders (s2, s3: 2 addresses);
  1 ambiguous (s6).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding, utc

LOGIN = "login_success.html"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def build(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    raw = RawLanding([path])
    raw.now = utc("2026-06-01T08:00:00")
    raw.user("snapshot", 1, 1, first_name="Alice", email="alice@example.com")
    raw.user("snapshot", 2, 2, first_name="Bob", email="bob@example.com")
    raw.user("snapshot", 3, 3, first_name="Dana", email="dana@example.com")
    raw.weblog(
        "a1",
        None,
        utc("2026-06-01T09:00:00"),
        page="pay.html",
        error_message="Timeout",
        anonymous_id="dev-shared",
    )
    raw.weblog("l1", 1, utc("2026-06-01T10:00:00"), page=LOGIN, anonymous_id="dev-shared")
    raw.weblog("a2", None, utc("2026-06-01T10:30:00"), anonymous_id="dev-shared")
    raw.weblog("l2", 2, utc("2026-06-01T11:00:00"), page=LOGIN, anonymous_id="dev-shared")
    raw.weblog(
        "a3",
        None,
        utc("2026-06-01T11:30:00"),
        page="cart.html",
        error_message="Payment failed",
        anonymous_id="dev-shared",
    )
    raw.weblog(
        "a4",
        None,
        utc("2026-06-01T09:00:00"),
        page="search.html",
        error_message="Oops",
        anonymous_id="dev-late",
    )
    raw.weblog("a5", None, utc("2026-06-01T09:05:00"), anonymous_id="dev-late")
    raw.weblog("a6", None, utc("2026-06-01T12:00:00"), anonymous_id="dev-nobody")
    raw.weblog("x1", None, utc("2026-06-01T12:00:00"))
    raw.order(
        "Instore",
        "insert",
        301,
        None,
        utc("2026-06-01T12:00:00"),
        [("Scarf", "Accessories", 20, 1)],
        customer_email=" ALICE@Example.com ",
    )
    raw.order(
        "Instore",
        "insert",
        302,
        None,
        utc("2026-06-01T12:30:00"),
        [("Hat", "Accessories", 10, 1)],
        customer_email="nobody@example.com",
    )
    raw.order("Instore", "insert", 303, None, utc("2026-06-01T13:00:00"), [("Hat", "A", 10, 1)])
    raw.email("m1", 1, utc("2026-06-01T09:00:00"), recipient_email="alice@example.com")
    raw.land()
    run_dbt(path, "run", work_dir=tmp_path)

    raw.now = utc("2026-06-05T08:00:00")
    raw.weblog("l3", 3, utc("2026-06-02T10:00:00"), page=LOGIN, anonymous_id="dev-late")
    raw.weblog("l4", 1, utc("2026-06-01T11:15:00"), page=LOGIN, anonymous_id="dev-shared")
    raw.user("update", 1, 1, first_name="Alice", email="alice.new@example.com")
    raw.user("update", 3, 3, first_name="Dana", email="bob@example.com")
    raw.order(
        "Instore",
        "insert",
        304,
        None,
        utc("2026-06-06T09:00:00"),
        [("Hat", "Accessories", 10, 1)],
        customer_email="alice@example.com",
    )
    raw.order(
        "Instore",
        "insert",
        305,
        None,
        utc("2026-06-06T10:00:00"),
        [("Gloves", "Accessories", 15, 2)],
        customer_email="Alice.New@example.com",
    )
    raw.order(
        "Instore",
        "insert",
        306,
        None,
        utc("2026-06-03T09:00:00"),
        [("Scarf", "Accessories", 20, 1)],
        customer_email="alice@example.com",
    )
    raw.order(
        "Instore",
        "insert",
        307,
        None,
        utc("2026-06-06T11:00:00"),
        [("Hat", "Accessories", 10, 1)],
        customer_email="bob@example.com",
    )
    raw.land()
    run_dbt(path, "run", work_dir=tmp_path)

    raw.now = utc("2026-06-07T08:00:00")
    raw.order(
        "Instore",
        "update",
        306,
        None,
        utc("2026-06-03T09:00:00"),
        [("Scarf", "Accessories", 20, 1)],
        customer_email="bob@example.com",
    )
    raw.order(
        "Instore", "update", 301, 2, utc("2026-06-01T12:00:00"), [("Scarf", "Accessories", 20, 1)]
    )
    raw.user("update", 3, 3, first_name="Dana", email="dana@example.com")
    raw.order(
        "Instore",
        "insert",
        308,
        None,
        utc("2026-06-07T09:00:00"),
        [("Hat", "Accessories", 10, 1)],
        customer_email="bob@example.com",
    )
    raw.land()
    # Models and data tests (the unit tests run in test_dbt_hand_checked); the builds before
    # this one ran the models only.
    run_dbt(path, "build", "--exclude-resource-type", "unit_test", work_dir=tmp_path)
    return path


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("identity-hand-checked"))


def rows(warehouse: Path, query: str) -> list[dict]:
    with duckdb.connect(str(warehouse)) as con:
        cursor = con.execute(query)
        columns = [description[0] for description in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def test_recent_errors_include_stitched_anonymous_events(warehouse: Path) -> None:
    query = """
        select customer_id, error_message, page, last_at, occurrences
        from marts.customer_recent_errors order by all
    """
    assert rows(warehouse, query) == [
        {"customer_id": 1, "error_message": "Payment failed", "page": "cart.html",
         "last_at": at("2026-06-01T11:30:00"), "occurrences": 1},
        {"customer_id": 1, "error_message": "Timeout", "page": "pay.html",
         "last_at": at("2026-06-01T09:00:00"), "occurrences": 1},
        {"customer_id": 3, "error_message": "Oops", "page": "search.html",
         "last_at": at("2026-06-01T09:00:00"), "occurrences": 1},
    ]  # fmt: skip


def test_profile_counts_guest_orders_and_stitched_visits(warehouse: Path) -> None:
    query = """
        select customer_id, instore_orders, instore_items_purchased, instore_amount_spent,
               favourite_product, favourite_product_purchases, last_instore_order_at,
               last_website_visit_at, last_website_login_at, latest_error_message
        from marts.customer_360 order by customer_id
    """
    assert rows(warehouse, query) == [
        {"customer_id": 1, "instore_orders": 1, "instore_items_purchased": 1,
         "instore_amount_spent": Decimal("30.00"), "favourite_product": "GLOVES",
         "favourite_product_purchases": 1, "last_instore_order_at": at("2026-06-06T10:00:00"),
         "last_website_visit_at": at("2026-06-01T11:30:00"),
         "last_website_login_at": at("2026-06-01T11:15:00"),
         "latest_error_message": "Payment failed"},
        {"customer_id": 2, "instore_orders": 3, "instore_items_purchased": 3,
         "instore_amount_spent": Decimal("50.00"), "favourite_product": "SCARF",
         "favourite_product_purchases": 2, "last_instore_order_at": at("2026-06-07T09:00:00"),
         "last_website_visit_at": at("2026-06-01T11:00:00"),
         "last_website_login_at": at("2026-06-01T11:00:00"), "latest_error_message": None},
        {"customer_id": 3, "instore_orders": 0, "instore_items_purchased": 0,
         "instore_amount_spent": Decimal("0"), "favourite_product": None,
         "favourite_product_purchases": None, "last_instore_order_at": None,
         "last_website_visit_at": at("2026-06-02T10:00:00"),
         "last_website_login_at": at("2026-06-02T10:00:00"), "latest_error_message": "Oops"},
    ]  # fmt: skip


def test_customer_identities(warehouse: Path) -> None:
    query = """
        select customer_id, identifier_type, identifier, first_seen_at, last_seen_at
        from marts.customer_identities order by all
    """
    expected = [
        (1, "anonymous_id", "dev-shared", "2026-06-01T09:00:00", "2026-06-01T11:30:00"),
        (1, "customer_id", "1", "2025-01-01T00:00:00", "2026-06-05T08:00:00"),
        (1, "email", "alice.new@example.com", "2026-06-05T08:00:00", "2026-06-06T10:00:00"),
        (1, "email", "alice@example.com", "2026-06-01T08:00:00", "2026-06-01T09:00:00"),
        (2, "anonymous_id", "dev-shared", "2026-06-01T11:00:00", "2026-06-01T11:00:00"),
        (2, "customer_id", "2", "2025-01-01T00:00:00", "2026-06-01T08:00:00"),
        (2, "email", "bob@example.com", "2026-06-01T08:00:00", "2026-06-07T09:00:00"),
        (3, "anonymous_id", "dev-late", "2026-06-01T09:00:00", "2026-06-02T10:00:00"),
        (3, "customer_id", "3", "2025-01-01T00:00:00", "2026-06-07T08:00:00"),
        (3, "email", "bob@example.com", "2026-06-05T08:00:00", "2026-06-05T08:00:00"),
        (3, "email", "dana@example.com", "2026-06-01T08:00:00", "2026-06-07T08:00:00"),
    ]
    assert rows(warehouse, query) == [
        {"customer_id": c, "identifier_type": t, "identifier": i,
         "first_seen_at": at(first), "last_seen_at": at(last)}
        for c, t, i, first, last in expected
    ]  # fmt: skip


def test_guest_orders_matched_by_email_at_the_time_of_the_order(warehouse: Path) -> None:
    query = """
        select order_id, customer_id, attribution, email_key, is_deleted, _customer_ids
        from intermediate.int_guest_order_owners order by order_id
    """
    assert [
        (r["customer_id"], r["attribution"], r["email_key"], r["is_deleted"], r["_customer_ids"])
        for r in rows(warehouse, query)
    ] == [
        (None, "user_id", None, False, [1]),  # s1: a user_id replaced alice@
        (None, "unmatched_email", "nobody@example.com", False, []),  # s2
        (None, "unmatched_email", "alice@example.com", False, [1]),  # s3: after Alice's change
        (1, "email", "alice.new@example.com", False, [1]),  # s4
        (2, "email", "bob@example.com", False, [1, 2, 3]),  # s5: corrected from alice@
        (None, "ambiguous_email", "bob@example.com", False, [2, 3]),  # s6: Bob's and Dana's
        (2, "email", "bob@example.com", False, [2, 3]),  # s7: after Dana left bob@
    ]


def test_unattributed_activity_is_counted(warehouse: Path) -> None:
    query = (
        "select kind, records, identifiers from intermediate.int_unattributed_activity"
        " order by kind"
    )
    assert rows(warehouse, query) == [
        {"kind": "anonymous_weblog_events", "records": 1, "identifiers": 1},
        {"kind": "guest_orders_ambiguous_email", "records": 1, "identifiers": 1},
        {"kind": "guest_orders_unmatched_email", "records": 2, "identifiers": 2},
    ]


def test_records_without_any_identifier_are_rejected(warehouse: Path) -> None:
    query = "select source, reason from staging.stg_rejected_records order by all"
    assert rows(warehouse, query) == [
        {"source": "instore_orders", "reason": "neither user_id nor customer_email"},
        {"source": "weblogs", "reason": "neither user_id nor anonymous_id"},
    ]


def test_a_full_refresh_gives_the_same_marts(warehouse: Path, tmp_path: Path) -> None:
    """The stitching models rebuilt from raw equal the three incremental batches."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute("checkpoint")
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    run_dbt(copy, "run", "--full-refresh", work_dir=tmp_path)
    for relation in (
        "marts.customer_identities",
        "marts.customer_360_base",
        "marts.customer_popular_items",
        "marts.customer_recent_errors",
        "intermediate.int_anonymous_weblog_rollup",
        "intermediate.int_guest_order_addresses",
        "intermediate.int_guest_order_owners",
    ):
        query = f"select * from {relation} order by all"
        assert rows(copy, query) == rows(warehouse, query), relation
