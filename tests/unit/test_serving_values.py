"""Values the profile API computes itself must equal the marts' (no services needed)."""

import duckdb
import pytest

from customer360.serving.api import items_per_order


@pytest.mark.parametrize(
    ("items", "orders"), [(17, 8), (21, 8), (1, 3), (2, 3), (5, 2), (0, 4), (1001, 8), (7, 7)]
)
def test_items_per_order_rounds_as_the_mart_does(items: int, orders: int) -> None:
    # customer_purchase_stats: cast(round(cast(items as double) / orders, 2) as decimal(18, 2))
    mart = duckdb.execute(
        "select cast(round(cast(? as double) / ?, 2) as decimal(18, 2))", [items, orders]
    ).fetchone()[0]
    assert items_per_order(items, orders) == float(mart)
