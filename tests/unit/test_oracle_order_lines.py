"""The chaos oracle rejects an order as staging does: an amount must fit the price's type."""

from __future__ import annotations

from decimal import Decimal

import pytest

from customer360.chaos.oracle import order_lines


def order(price, quantity) -> dict:
    return {"items": [{"product_name": "Jet", "price": price, "quantity": quantity}]}


@pytest.mark.parametrize(
    ("price", "quantity"),
    [(10**16, 10**6), (9 * 10**21, 2), (10**4, 10**18)],
)
def test_an_amount_of_10_to_the_22_or_more_rejects_the_order(price, quantity) -> None:
    assert order_lines(order(price, quantity)) is None


@pytest.mark.parametrize(
    ("price", "quantity", "kept_price"),
    [
        (10**16, 999_999, Decimal("10000000000000000.000000")),
        (0, 2**62, Decimal("0.000000")),
        (19.999, 3, Decimal("19.999000")),
    ],
)
def test_an_amount_below_10_to_the_22_is_kept(price, quantity, kept_price) -> None:
    assert order_lines(order(price, quantity)) == [("Jet", kept_price, quantity)]
