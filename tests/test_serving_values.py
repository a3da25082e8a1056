"""`customer_purchase_stats.items_per_order` rounds the exact ratio half up to cents.

The mart is the one place this rounding is written; the profile API serves the mart's value
(`test_serving_profiles.py` compares them). The real dbt models build the mart from raw
landings: one customer per case below, with that many online orders (an order without items
counts) and line items. No services.

By hand, the exact ratio rounded half up to cents (as the chaos oracle rounds it):
17 / 8 = 2.125 -> 2.13, 1 / 8 = 0.125 -> 0.13, 5 / 8 = 0.625 -> 0.63, 3 / 40 = 0.075 -> 0.08,
7 / 40 = 0.175 -> 0.18, 1 / 3 = 0.333 -> 0.33, 2 / 3 = 0.667 -> 0.67, 0 / 3 -> 0.00, 7 / 7 -> 1.00.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest

from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding

CASES = [
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

PARAMS = CASES


@pytest.fixture(scope="module")
def mart(tmp_path_factory) -> dict[tuple[int, int], Decimal]:
    """(items, orders) -> customer_purchase_stats.items_per_order, built by dbt."""
    work_dir = tmp_path_factory.mktemp("items-per-order")
    warehouse = work_dir / "warehouse.duckdb"
    raw = RawLanding([warehouse])
    order_number = 1000
    for customer, (items, orders, _) in enumerate(CASES, start=1):
        raw.user("snapshot", customer, customer)
        for n in range(orders):  # the items spread over the orders, the first ones get more
            order_number += 1
            lines = [("Red Shirt", "Tops", 10, 1)] * (items // orders + (n < items % orders))
            raw.order("Online", "snapshot", order_number, customer, items=lines)
    raw.land()
    run_dbt(warehouse, "run", "--select", "+customer_purchase_stats", work_dir=work_dir)
    with duckdb.connect(str(warehouse)) as con:
        rows = con.execute(
            "select number_of_items_purchased, number_of_orders, items_per_order"
            " from marts.customer_purchase_stats where channel = 'Online'"
        ).fetchall()
    assert len(rows) == len(CASES), rows
    return {(items, orders): value for items, orders, value in rows}


@pytest.mark.parametrize(("items", "orders", "by_hand"), PARAMS)
def test_the_mart_rounds_the_exact_ratio_half_up(mart, items, orders, by_hand) -> None:
    assert mart[(items, orders)] == Decimal(by_hand)
