"""The profile API serves what the marts computed, for every customer of a built warehouse.

No services: raw landings for a few hundred customers (random orders in both channels with
item counts whose ratios round every way, deleted and corrected orders, deleted customers,
birthdays today and on 29 February, weblogs with errors and logins, emails opened and clicked)
go through the real dbt project into a DuckDB warehouse; the serving copy is published from it
as the pipeline publishes it; then the API's profile of every customer must equal, section by
section, what plain SQL reads from the warehouse's marts (`tests/profiles.py`). So a rule the
API or the serving copy computed on its own (a customer's age, a rounding, an order of a list)
would differ here from the mart that owns it.

The same warehouse holds one customer per case of `ITEMS_PER_ORDER` (customers from 1001 on):
that many online orders (an order without items counts) and line items, so the mart's rounding
of `items_per_order` is checked against values worked out by hand: the exact ratio rounded half
up to cents (as the chaos oracle rounds it): 17 / 8 = 2.125 -> 2.13, 1 / 8 = 0.125 -> 0.13,
5 / 8 = 0.625 -> 0.63, 3 / 40 = 0.075 -> 0.08, 7 / 40 = 0.175 -> 0.18, 1 / 3 = 0.333 -> 0.33,
2 / 3 = 0.667 -> 0.67, 0 / 3 -> 0.00, 7 / 7 -> 1.00.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import random
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from customer360.config import Settings
from customer360.serving.publish import publish_serving_copy
from customer360.serving.server import BackgroundServer
from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding, utc
from tests.profiles import assert_profile_matches_marts, profiles_from_marts

CUSTOMERS = 300
# (line items, online orders, items_per_order by hand), one customer each from ROUNDING_FIRST on.
ITEMS_PER_ORDER = [
    (17, 8, "2.13"),
    (1, 8, "0.13"),
    (5, 8, "0.63"),
    (3, 40, "0.08"),
    (7, 40, "0.18"),
    (1, 3, "0.33"),
    (2, 3, "0.67"),
    (0, 3, "0.00"),
    (7, 7, "1.00"),
]
ROUNDING_FIRST = 1001
PRODUCTS = [
    ("Red Shirt", "Tops", 49.99),
    ("red shirt", "Tops", 50),
    ("Blue Jeans", "Bottoms", 80),
    ("Green Hat", "Accessories", 15.5),
    ("White Socks", "Accessories", 4.25),
    ("Black Coat", "Outerwear", 199.9),
]
PAGES = ["home.html", "login_success.html", "cart.html", "pay.html", "product.html"]
ERRORS = [None, None, None, "Timeout", "Payment failed", "Not found"]


def date_of_birth(rng: random.Random, customer_id: int, today: dt.date) -> str | None:
    """Mostly random; every tenth a birthday today, a few on 29 February or missing."""
    year = rng.randint(1940, 2008)
    if customer_id % 10 == 0:
        if (today.month, today.day) == (2, 29):
            year = 2000
        return f"{year}-{today.month:02d}-{today.day:02d}"
    if customer_id % 17 == 0:
        return f"{rng.choice([1960, 1984, 2000, 2004])}-02-29"
    if customer_id % 23 == 0:
        return None
    return f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def land_customers(raw: RawLanding, seed: int) -> None:
    """Two rounds of landings for CUSTOMERS customers (see the module's docstring)."""
    rng = random.Random(seed)
    today = dt.datetime.now(dt.UTC).date()
    orders: list[tuple[str, int, int]] = []
    for customer in range(1, CUSTOMERS + 1):
        raw.user("snapshot", customer, customer, dob=date_of_birth(rng, customer, today))
        for _ in range(rng.choice([0, 1, 1, 2, 3, 5, 8])):
            raw.tick(rng.randint(1, 300))
            channel = rng.choice(["Online", "Instore"])
            number = 10_000 + len(orders)
            items = [(*rng.choice(PRODUCTS), rng.randint(1, 3)) for _ in range(rng.randint(0, 4))]
            # Dates over the last two years, so every RFM segment and lifecycle stage occurs.
            ordered = utc(f"{today}T12:00:00") - dt.timedelta(days=rng.randint(0, 730))
            raw.order(channel, "snapshot", number, customer, ordered, items)
            orders.append((channel, number, customer))
        for event in range(rng.randint(0, 8)):
            raw.tick(rng.randint(1, 120))
            raw.weblog(
                f"w{customer}-{event}",
                customer,
                page=rng.choice(PAGES),
                error_message=rng.choice(ERRORS),
                partition=rng.randint(0, 2),
            )
        for email in range(rng.randint(0, 3)):
            raw.email(
                f"e{customer}-{email}",
                customer,
                raw.now,
                partition=rng.randint(0, 2),
                recipient_email=f"c{customer}@example.com",
            )
        # identity stitching: anonymous browsing, then a login on that browser; a guest till
        # sale by the customer's address in another case
        if customer % 4 == 0:
            device = f"dev-{customer}"
            raw.weblog(
                f"a{customer}", None, page="cart.html", error_message="Timeout", anonymous_id=device
            )
            raw.tick(30)
            raw.weblog(f"l{customer}", customer, page="login_success.html", anonymous_id=device)
        if customer % 5 == 0:
            raw.order(
                "Instore",
                "snapshot",
                50_000 + customer,
                None,
                raw.now,
                [("Green Hat", "Accessories", 15.5, 1)],
                customer_email=f" C{customer}@Example.com",
            )
    raw.weblog("w-unknown", CUSTOMERS + 1, page="cart.html", error_message="Timeout")
    order_number = 90_000
    for customer, (items, count, _) in enumerate(ITEMS_PER_ORDER, start=ROUNDING_FIRST):
        raw.user("snapshot", customer, customer)
        for n in range(count):  # the items spread over the orders, the first ones get more
            order_number += 1
            lines = [("Red Shirt", "Tops", 10, 1)] * (items // count + (n < items % count))
            raw.order("Online", "snapshot", order_number, customer, items=lines)
    raw.land()

    # Round 2: changes to what landed.
    raw.tick(3_600)
    for customer in rng.sample(range(1, CUSTOMERS + 1), 12):
        raw.user("delete", customer, customer)
    for channel, number, customer in rng.sample(orders, len(orders) // 10):
        raw.tick(1)
        if rng.random() < 0.5:
            raw.order(channel, "delete", number)
        else:
            items = [(*rng.choice(PRODUCTS), rng.randint(1, 3)) for _ in range(rng.randint(1, 5))]
            raw.order(channel, "update", number, customer, raw.now, items)
    for customer in range(3, CUSTOMERS + 1, 30):  # a new address; the old one stays stitched
        raw.user("update", customer, customer, email=f"new{customer}@example.com")
    for customer in rng.sample(range(1, CUSTOMERS + 1), 60):
        raw.tick(5)
        sent = raw.now - dt.timedelta(hours=1)
        raw.email(f"late-{customer}", customer, sent)
        raw.email(f"late-{customer}", customer, sent, opened=True, clicked=rng.random() < 0.5)
    raw.land()


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Settings, Path]:
    """Settings whose serving copy is published from a dbt-built warehouse, and that warehouse."""
    work_dir = tmp_path_factory.mktemp("profiles")
    settings = Settings(warehouse=work_dir / "warehouse.duckdb")
    raw = RawLanding([settings.warehouse], now=utc("2026-05-01T08:00:00"))
    land_customers(raw, seed=15)
    run_dbt(settings.warehouse, "run", work_dir=work_dir / "dbt")
    with duckdb.connect(str(settings.warehouse)) as con:
        publish_serving_copy(con, settings, force=True)
    return settings, settings.warehouse


def test_every_profile_equals_the_marts(published) -> None:
    settings, warehouse = published
    with duckdb.connect(str(warehouse)) as con:
        existing = {
            r[0] for r in con.execute("select customer_id from marts.customer_360").fetchall()
        }
        assert len(existing) > CUSTOMERS * 0.9  # a few deleted
        everyone = [
            *range(1, CUSTOMERS + 2),
            *range(ROUNDING_FIRST, ROUNDING_FIRST + len(ITEMS_PER_ORDER)),
        ]
        expected = profiles_from_marts(con, everyone)
        assert set(expected) == existing & set(everyone)
        with BackgroundServer(settings, port=0) as server:
            address = server.url.removeprefix("http://")
            client = http.client.HTTPConnection(address, timeout=10)
            try:
                for customer_id in everyone:
                    client.request("GET", f"/api/customers/{customer_id}")
                    response = client.getresponse()
                    body = response.read()
                    if customer_id not in existing:
                        assert response.status == 404, customer_id
                        continue
                    assert response.status == 200, body
                    assert_profile_matches_marts(json.loads(body), expected=expected[customer_id])
            finally:
                client.close()


@pytest.mark.parametrize(("items", "orders", "by_hand"), ITEMS_PER_ORDER)
def test_the_mart_rounds_items_per_order_half_up(published, items, orders, by_hand) -> None:
    _, warehouse = published
    customer = ROUNDING_FIRST + ITEMS_PER_ORDER.index((items, orders, by_hand))
    with duckdb.connect(str(warehouse)) as con:
        row = con.execute(
            "select number_of_items_purchased, number_of_orders, items_per_order"
            " from marts.customer_purchase_stats where customer_id = ? and channel = 'Online'",
            [customer],
        ).fetchone()
    assert row == (items, orders, Decimal(by_hand))


def test_the_data_covers_what_the_profile_shows(published) -> None:
    """The comparison above is only as good as the cases the data holds."""
    _, warehouse = published
    today = dt.datetime.now(dt.UTC).date()
    with duckdb.connect(str(warehouse)) as con:
        one = con.execute(
            """
            select
                count(*) filter (where month(dob) = ? and day(dob) = ?),
                count(*) filter (where month(dob) = 2 and day(dob) = 29),
                count(*) filter (where dob is null),
                count(*) filter (where online_orders > 0 and instore_orders > 0),
                count(*) filter (where last_email_clicked_at is not null),
                count(*) filter (where last_website_login_at is not null),
                count(*) filter (where latest_error_message is not null),
                count(*) filter (where customer_id in (
                    select customer_id from marts.customer_identities
                    where identifier_type = 'anonymous_id'
                )),
                count(*) filter (where customer_id in (
                    select customer_id from marts.customer_identities
                    where identifier_type = 'email' and identifier like 'new%'
                ))
            from marts.customer_360
            """,
            [today.month, today.day],
        ).fetchone()
        segments, stages = con.execute(
            "select count(distinct rfm_segment), count(distinct lifecycle_stage)"
            " from marts.customer_traits"
        ).fetchone()
        ratios = con.execute(
            "select count(distinct items_per_order) from marts.customer_purchase_stats"
        ).fetchone()[0]
    assert all(count > 0 for count in one), one
    assert ratios > 10
    assert segments >= 7 and stages == 5, (segments, stages)


def test_search_finds_a_customer_by_any_stitched_email(published) -> None:
    """Customer 33 changed address to new33@example.com: the old one still finds them, in any
    case; so does the new one."""
    settings, warehouse = published
    with duckdb.connect(str(warehouse)) as con:
        current = con.execute(
            "select email from marts.customer_details where customer_id = 33"
        ).fetchone()
    assert current == ("new33@example.com",)
    with BackgroundServer(settings, port=0) as server:
        client = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
        try:
            for query in ("C33@EXAMPLE.COM", "new33@example"):
                client.request("GET", f"/api/customers?q={query}")
                body = json.loads(client.getresponse().read())
                assert [item["customer_id"] for item in body["items"]] == [33], (query, body)
            client.request("GET", "/api/customers/33")
            identities = json.loads(client.getresponse().read())["identities"]
        finally:
            client.close()
    assert {(i["identifier_type"], i["identifier"]) for i in identities} >= {
        ("customer_id", "33"),
        ("email", "c33@example.com"),
        ("email", "new33@example.com"),
    }
