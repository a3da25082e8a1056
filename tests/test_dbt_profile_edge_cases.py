"""Consent, audiences and propensity reasons at their edges, hand-checked (each expected value
worked out in its test's docstring). D = today at 00:00 UTC (the views read the UTC date).

Round 1 (raw.now = D-10):
- 1: users document with consent granted and no `at` (the document's updated_at is D-10);
  email m1 sent D-6, unsubscribed at D-5; a website visit at D-2, never ordered.
- 2: consent granted at D-200; an in-store order of 300 dated D-90 10:00 (90 days ago).
- 3: an online order of 40 dated D+10 (in the future).
- 4: online orders of 100 (delivered), 50 (cancelled) and 30 (returned), all at D-3.
- 5: a users document and nothing else (no history).
- 6: consent withdrawn without `at` (updated_at D-10).
Round 2 (raw.now = D-1): 1 moves to Lyon (the same document otherwise, consent untouched: still
granted without `at`; updated_at becomes D-1). 6 grants consent without `at` at D-1 00:00
(' Granted'), then moves to Nice at D-1 01:00 (consent untouched). 4's delivered order of 100
is returned (' Returned ') and 4 orders 60 at D-2 (delivered).
Built with `run` after each round in one warehouse and `run --full-refresh` in another.
"""

from __future__ import annotations

import datetime as dt
import types
from pathlib import Path

import duckdb
import pytest

from customer360.pipeline.microbatch import MicroBatch
from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.propensity_model import HAND_MODEL, store_model
from tests.dbt_fixtures.raw_builder import RawLanding, object_id

D = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def days_ago(n: float) -> dt.datetime:
    return D - dt.timedelta(days=n)


def naive(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=None)


def online(
    raw: RawLanding, number: int, customer: int, when: dt.datetime, price, status, op="insert"
):
    raw.mongo(
        "online_orders",
        op,
        object_id(number),
        {
            "user_id": customer,
            "date": when,
            "items": [
                {"product_id": "P", "product_name": "Coat", "category": "Outerwear",
                 "price": price, "quantity": 1}
            ],
            "delivery_address": {"city": "Lyon", "country": "France"},
            "status": status,
        },
    )  # fmt: skip


def round_one(raw: RawLanding) -> None:
    raw.now = days_ago(10)
    raw.user("snapshot", 1, 1, consent={"email": {"status": "granted"}})
    raw.user("snapshot", 2, 2, consent={"email": {"status": "granted", "at": days_ago(200)}})
    raw.user("snapshot", 3, 3)
    raw.user("snapshot", 4, 4)
    raw.user("snapshot", 5, 5)
    raw.user("snapshot", 6, 6, consent={"email": {"status": "withdrawn"}})
    raw.email("m1", 1, days_ago(6))
    raw.email("m1", 1, days_ago(6), opened=True, unsubscribed=True, updated_at=days_ago(5))
    raw.weblog("w1", 1, days_ago(2), page="products.html")
    raw.order(
        "Instore", "insert", 21, 2, days_ago(90) + dt.timedelta(hours=10),
        [("Coat", "Outerwear", 300, 1)],
    )  # fmt: skip
    online(raw, 31, 3, D + dt.timedelta(days=10), 40, "delivered")
    online(raw, 41, 4, days_ago(3), 100, "delivered")
    online(raw, 42, 4, days_ago(3), 50, "cancelled")
    online(raw, 43, 4, days_ago(3), 30, "returned")


def round_two(raw: RawLanding) -> None:
    raw.now = days_ago(1)
    raw.user("update", 1, 1, city="Lyon", consent={"email": {"status": "granted"}})
    raw.user("update", 6, 6, consent={"email": {"status": " Granted"}})
    raw.tick(3600)
    raw.user("update", 6, 6, city="Nice", consent={"email": {"status": "granted"}})
    online(raw, 41, 4, days_ago(3), 100, " Returned ", op="update")
    online(raw, 44, 4, days_ago(2), 60, "delivered")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("profile-edges")
    incremental, full = tmp / "inc" / "warehouse.duckdb", tmp / "full" / "warehouse.duckdb"
    incremental.parent.mkdir()
    full.parent.mkdir()
    raw = RawLanding([incremental, full])
    for prepare in (round_one, round_two):
        prepare(raw)
        raw.land()
        run_dbt(incremental, "run", work_dir=tmp / "dbt-inc")
        run_dbt(full, "run", "--full-refresh", work_dir=tmp / "dbt-full")
    return {"incremental": incremental, "full": full, "tmp": tmp}


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).fetchall()


def test_an_unrelated_profile_update_does_not_grant_consent_again(built) -> None:
    """Customer 1 granted consent without a time (the document's updated_at then was D-10),
    then unsubscribed at D-5 -> withdrawn since D-5 (the latest statement). At D-1 the customer
    moved city: the document changed, its consent did not (still granted, no `at`). Nobody
    granted anything at D-1, so consent stays withdrawn since D-5 (unsubscribe), and the email
    audience browsed_never_bought (visited D-2, never ordered) must not hold customer 1."""
    expected = [(1, "withdrawn", naive(days_ago(5)), "unsubscribe")]
    sql = (
        "select customer_id, email_consent, email_consent_since, email_consent_source"
        " from marts.customer_consent where customer_id = 1"
    )
    assert query(built["full"], sql) == query(built["incremental"], sql)
    assert query(built["incremental"], sql) == expected
    assert (
        query(
            built["incremental"],
            "select audience from marts.customer_audiences where customer_id = 1",
        )
        == []
    )


def test_consent_without_a_time_holds_from_the_change_that_set_it(built) -> None:
    """Customer 6: withdrawn at D-10, granted at D-1 00:00 (both without `at`), then a move at
    D-1 01:00 -> granted since D-1 00:00 (the grant), not since the move; the same after a
    full refresh."""
    sql = (
        "select customer_id, email_consent, email_consent_since, email_consent_source"
        " from marts.customer_consent where customer_id = 6"
    )
    assert query(built["incremental"], sql) == [(6, "granted", naive(days_ago(1)), "profile")]
    assert query(built["full"], sql) == query(built["incremental"], sql)


def test_at_risk_high_value_uses_the_traits_meaning_of_the_last_90_days(built) -> None:
    """Customer 2: 300 spent, consent granted, last order 90 days ago. The traits say no order
    in the last 90 days (days ago < 90: orders_last_90_days 0, days_since_last_order 90,
    lifecycle 'at risk'), so at_risk_high_value (lifetime value 300 or more, nothing bought in
    the last 90 days: days_since_last_order >= 90) holds customer 2."""
    (reading_day,) = query(built["incremental"], "select cast(timezone('UTC', now()) as date)")[0]
    if reading_day != D.date():
        pytest.skip("the UTC day changed since the fixture was built: no longer 90 days ago")
    assert query(
        built["incremental"],
        "select orders_last_90_days, days_since_last_order, lifecycle_stage"
        " from marts.customer_traits where customer_id = 2",
    ) == [(0, 90, "at risk")]
    assert query(
        built["incremental"],
        "select audience from marts.customer_audiences where customer_id = 2",
    ) == [("at_risk_high_value",)]


def test_the_traits_count_sales_only(built) -> None:
    """Customer 4's online orders: 41 (100, delivered at D-3, returned in round 2), 42 (50,
    cancelled), 43 (30, returned), 44 (60, delivered at D-2, round 2). Net spend is what the
    retailer kept: the one sale, 44 -> lifetime_value 60, average 60.00, one sale in the last
    30 days, 2 days since, first sale D-2 (41 no longer counts: first order date is not D-3),
    R5 F1 M1 (60 < 100) -> New; lifecycle new (first sale 2 days ago); online; Outerwear.
    The profile's order totals keep every order placed: 4 orders, 240 spent. The same after a
    full refresh."""
    (reading_day,) = query(built["incremental"], "select cast(timezone('UTC', now()) as date)")[0]
    if reading_day != D.date():
        pytest.skip("the UTC day changed since the fixture was built")
    sql = (
        "select lifetime_value, average_order_value, orders_last_30_days, days_since_last_order,"
        " first_order_date, recency_score, frequency_score, monetary_score, rfm_segment,"
        " lifecycle_stage, preferred_channel, preferred_category, total_orders,"
        " total_amount_spent from marts.customer_360 where customer_id = 4"
    )
    expected = [
        (60, 60, 1, 2, days_ago(2).date(), 5, 1, 1, "New", "new", "online", "Outerwear", 4, 240)
    ]
    assert query(built["incremental"], sql) == expected
    assert query(built["full"], sql) == expected


def test_no_history_has_no_order_or_spend_reason(built) -> None:
    """A model whose log_orders and log_spend coefficients are negative (collinear features
    often get one): customer 5 has no order, so log_orders = log_spend = 0 and their
    contributions -0.8 * (0 - 0.7) / 0.6 = 0.93 and -0.3 * (0 - 2.5) / 2 = 0.375 are positive;
    but '0 orders' / 'spent 0.00 in total' measure orders the customer never had, and "never
    an event the customer never had" is the rule: neither is a reason."""
    path, tmp = built["full"], built["tmp"]
    model = {**HAND_MODEL, "log_orders": (0.7, 0.6, -0.8), "log_spend": (2.5, 2.0, -0.3)}
    store_model(path, "20260531T000000", model=model)
    run_dbt(path, "run", "--select", "customer_propensity", work_dir=tmp / "dbt-full")
    ((r1, r2, r3),) = query(
        path,
        "select reason_1, reason_2, reason_3 from marts.customer_propensity where customer_id = 5",
    )
    reasons = [r for r in (r1, r2, r3) if r is not None]
    assert not [r for r in reasons if "order" in r or "spent" in r], reasons


def test_a_new_day_without_new_data_still_evaluates_the_audiences(built) -> None:
    """After a build has taken in everything, the micro-batch builds nothing until data lands.
    On a new UTC day (simulated as test_dbt_audiences does: the recorded evaluation day moved
    back by one) time-relative memberships move, so the micro-batch must build
    audience_changes even when nothing landed: sources_to_build is not empty."""
    path = built["incremental"]
    with duckdb.connect(str(path)) as con:
        stub = types.SimpleNamespace(con=con, _dbt_owed=set(), project_changed=lambda: False)
        assert MicroBatch.sources_to_build(stub) == []
        con.execute(
            "update intermediate.dbt_watermarks set batch_id = batch_id - 1"
            " where model = 'audience_changes' and source = 'audience_day'"
        )
        assert MicroBatch.sources_to_build(stub) != []


def test_unit_tests_of_the_changed_models(built) -> None:
    run_dbt(
        built["full"],
        "test",
        "--select",
        "stg_users,test_type:unit",
        "customer_consent,test_type:unit",
        "customer_propensity,test_type:unit",
        "customer_traits,test_type:unit",
        work_dir=built["tmp"] / "dbt-full",
    )
