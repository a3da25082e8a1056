"""The chaos oracle's customer_traits follows the rules dbt's unit test checks, on the same
hand-worked customers (dbt/models/marts/customer_traits.yml, read on 2026-06-30)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from customer360.chaos.traits_oracle import TRAITS_COLUMNS, expected_traits, new_orders_index

TODAY = date(2026, 6, 30)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_oracle_traits_match_the_hand_worked_cases() -> None:
    orders = new_orders_index()
    # 1: 8 orders, GBP 800, the last today -> Champions, active; Dresses over Tops (more spent).
    for day, channel, lines in [
        ("2026-06-30 10:00", "Online", [("Tops", "150.00")]),
        ("2026-06-30 11:00", "Online", [("Dresses", "200.00")]),
        ("2026-06-01 10:00", "Instore", [("Tops", "0"), ("Dresses", "0")]),
        ("2026-05-31 10:00", "Online", [("Tops", "0")]),
        ("2026-04-02 10:00", "Instore", [("Dresses", "0")]),
        ("2026-04-01 10:00", "Online", [("Tops", "150.00")]),
        ("2025-07-01 10:00", "Online", [("Dresses", "150.00")]),
        ("2025-06-30 10:00", "Instore", [("Jeans", "150.00")]),
    ]:
        orders[1].add(channel, at(day), [(c, Decimal(a)) for c, a in lines])
    # 4: 4 orders, GBP 150, last 365 days ago, tie per channel, the latest online -> online;
    # Coats and Bags tie on everything -> Bags.
    orders[4].add("Online", at("2025-06-30 10:00"), [("Coats", Decimal(10)), ("Bags", Decimal(10))])
    orders[4].add("Instore", at("2025-06-30 09:00"), [(None, Decimal("20.00"))])
    orders[4].add("Online", at("2025-05-01 10:00"), [(None, Decimal("55.00"))])
    orders[4].add("Instore", at("2025-05-01 10:00"), [(None, Decimal("55.00"))])
    # 6: 2 orders without lines, 302 days ago, the in-store one later -> instore, Hibernating.
    orders[6].add("Online", at("2025-09-01 10:00"), [])
    orders[6].add("Instore", at("2025-09-01 12:00"), [])
    # 10: 2 orders, GBP 100.01 -> 50.005 -> 50.01; last 60 days ago, first 76 -> Promising.
    orders[10].add("Online", at("2026-05-01 10:00"), [(None, Decimal("50.00"))])
    orders[10].add("Online", at("2026-04-15 10:00"), [(None, Decimal("50.01"))])
    rows = {row[0]: dict(zip(TRAITS_COLUMNS, row, strict=True)) for row in expected_traits(
        {1, 4, 6, 7, 10}, orders, TODAY
    )}  # fmt: skip
    assert rows[1] | {} == {
        "customer_id": 1, "lifetime_value": Decimal("800.00"),
        "average_order_value": Decimal("100.00"), "orders_last_30_days": 3,
        "orders_last_90_days": 5, "orders_last_365_days": 7, "days_since_last_order": 0,
        "first_order_date": date(2025, 6, 30), "preferred_channel": "online",
        "preferred_category": "Dresses", "recency_score": 5, "frequency_score": 5,
        "monetary_score": 5, "rfm_segment": "Champions", "lifecycle_stage": "active",
    }  # fmt: skip
    assert (rows[4]["preferred_channel"], rows[4]["preferred_category"]) == ("online", "Bags")
    assert (rows[4]["recency_score"], rows[4]["frequency_score"], rows[4]["monetary_score"]) == (
        1, 3, 2
    )  # fmt: skip
    assert (rows[4]["rfm_segment"], rows[4]["lifecycle_stage"]) == ("At risk", "lapsed")
    assert rows[6]["preferred_channel"] == "instore"
    assert rows[6]["average_order_value"] == Decimal("0.00")
    assert (rows[6]["rfm_segment"], rows[6]["lifecycle_stage"]) == ("Hibernating", "at risk")
    assert rows[7] == dict.fromkeys(TRAITS_COLUMNS) | {
        "customer_id": 7, "lifetime_value": Decimal(0), "orders_last_30_days": 0,
        "orders_last_90_days": 0, "orders_last_365_days": 0, "lifecycle_stage": "prospect",
    }  # fmt: skip
    assert rows[10]["average_order_value"] == Decimal("50.01")
    assert (rows[10]["rfm_segment"], rows[10]["lifecycle_stage"]) == ("Promising", "active")
