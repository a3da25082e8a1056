"""Money at its bounds: no valid order breaks a build, and one that cannot be summed is rejected.

A price is a DECIMAL(28, 6); a line item's amount (price x quantity) must fit the same type
(below 10^22), or its order is rejected with the reason; a customer's totals are decimal(38, 6),
the average order value and the propensity reason's spend decimal(38, 2). Before, a customer
whose spend reached 10^16 broke customer_propensity's build (a decimal(18, 2) cast) and every
read of customer_traits (its average order value), so the serving copy was never published
again; two items of 9 x 10^21 broke customer_360_base (a sum cast to decimal(28, 6)).

Round 1 (orders on 2026-05-21, 10 days before the model's reference time 2026-05-31):
- 1: one online item of 10^17.
- 2: one online order, two items of 9 x 10^21 (sum 1.8 x 10^22).
- 3: o31 10^16 x 10^6 = 10^22 (rejected: does not fit); o32 10^16 x 999,999 (9.99999 x 10^21).
- 4: an item priced 0 x 2^62 (amount 0).
- 5: an order of 10 on 2025-01-01 10:00, 514.6 days before the reference.
Round 2: 1 and 2 each another order of 9 x 10^21 (a sale each).
Built with `run` after each round in one warehouse and `run --full-refresh` in another, then
published.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from customer360.config import Settings
from customer360.serving import publish_serving_copy
from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.propensity_model import HAND_MODEL, store_model
from tests.dbt_fixtures.raw_builder import RawLanding, utc

ROUND_ONE_AT = utc("2026-05-21T10:00:00")
# Staleness and spend both raise the score, so both are reasons when they count.
MODEL = {
    **HAND_MODEL,
    "days_since_last_order": (120.0, 100.0, 0.9),
    "log_spend": (2.5, 2.0, 0.3),
}
E21 = 10**21


def round_one(raw: RawLanding) -> None:
    raw.now = ROUND_ONE_AT
    for n in range(1, 6):
        raw.user("snapshot", n, n)
    raw.order("Online", "insert", 11, 1, ROUND_ONE_AT, [("Yacht", "Boats", 10**17, 1)])
    raw.order("Online", "insert", 21, 2, ROUND_ONE_AT,
              [("Isle", "Land", 9 * E21, 1), ("Isle", "Land", 9 * E21, 1)])  # fmt: skip
    raw.order("Online", "insert", 31, 3, ROUND_ONE_AT, [("Jet", "Air", 10**16, 10**6)])
    raw.order("Online", "insert", 32, 3, ROUND_ONE_AT, [("Jet", "Air", 10**16, 999_999)])
    raw.order("Instore", "insert", 41, 4, ROUND_ONE_AT, [("Sample", "Free", 0, 2**62)])
    raw.order("Online", "insert", 51, 5, utc("2025-01-01T10:00:00"), [("Hat", "Acc", 10, 1)])
    raw.land()


def round_two(raw: RawLanding) -> None:
    raw.tick(3600)
    raw.order("Instore", "insert", 12, 1, raw.now, [("Isle", "Land", 9 * E21, 1)])
    raw.order("Online", "insert", 22, 2, raw.now, [("Isle", "Land", 9 * E21, 1)])
    raw.land()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("money")
    incremental, full = tmp / "incremental.duckdb", tmp / "full.duckdb"
    raw = RawLanding([incremental, full])
    round_one(raw)
    run_dbt(incremental, "run", work_dir=tmp / "dbt-inc")
    store_model(incremental, "20260531T000000", MODEL)
    run_dbt(incremental, "run", work_dir=tmp / "dbt-inc")
    round_two(raw)
    run_dbt(incremental, "run", work_dir=tmp / "dbt-inc")
    run_dbt(full, "run", work_dir=tmp / "dbt-full")
    store_model(full, "20260531T000000", MODEL)
    run_dbt(full, "run", "--full-refresh", work_dir=tmp / "dbt-full")
    return {"incremental": incremental, "full": full, "tmp": tmp}


def money(warehouse: Path) -> dict[int, tuple]:
    """Per customer: total spend, lifetime value, average order value, the spend per category,
    and the propensity reasons."""
    with duckdb.connect(str(warehouse)) as con:
        rows = con.execute(
            "select b.customer_id, b.total_amount_spent, t.lifetime_value,"
            " t.average_order_value,"
            " (select list(amount_spent order by category) from marts.customer_category_purchases c"
            "  where c.customer_id = b.customer_id),"
            " p.reason_1, p.reason_2, p.reason_3"
            " from marts.customer_360_base b"
            " join marts.customer_traits t using (customer_id)"
            " left join marts.customer_propensity p using (customer_id)"
            " order by 1"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def reasons(row: tuple) -> set[str]:
    return {r for r in row[4:] if r is not None}


def test_totals_and_averages_are_exact(built) -> None:
    """1: 10^17 + 9 x 10^21, two sales, average 4,500,050,000,000,000,000,000. 2: three items of
    9 x 10^21 in two sales, average 1.35 x 10^22. 3: o32 only. 4: a sale of 0."""
    got = money(built["incremental"])
    assert got[1][:4] == (
        Decimal(9 * E21 + 10**17),
        Decimal(9 * E21 + 10**17),
        Decimal(4_500_050_000_000_000_000_000),
        [Decimal(10**17), Decimal(9 * E21)],
    )
    assert got[2][:4] == (
        Decimal(27 * E21),
        Decimal(27 * E21),
        Decimal(13_500_000_000_000_000_000_000),
        [Decimal(27 * E21)],
    )
    assert got[3][:2] == (Decimal(9_999_990 * 10**15), Decimal(9_999_990 * 10**15))
    assert got[4][:3] == (Decimal(0), Decimal(0), Decimal(0))


def test_an_amount_that_does_not_fit_rejects_its_order(built) -> None:
    with duckdb.connect(str(built["incremental"])) as con:
        rejected = con.execute(
            "select source, reason from staging.stg_rejected_records order by all"
        ).fetchall()
        orders = con.execute(
            "select order_id from staging.stg_online_orders where customer_id = 3"
        ).fetchall()
    assert rejected == [("online_orders", "items are not valid line items")]
    assert len(orders) == 1


def test_reasons_give_the_spend_and_the_real_days(built) -> None:
    """The spend in full, to the cent (it was read from the feature's double:
    9000100000000000602931.20); customer 5's order 514.6 days before the reference reads as
    514 days, not as the feature's cap of 365."""
    got = money(built["incremental"])
    assert "spent 9000100000000000000000.00 in total" in reasons(got[1])
    assert "spent 27000000000000000000000.00 in total" in reasons(got[2])
    assert "last order 514 days ago" in reasons(got[5])


def test_incremental_equals_full_refresh(built) -> None:
    assert money(built["incremental"]) == money(built["full"])


def test_the_serving_copy_is_published_and_reads_the_traits(built) -> None:
    """The traits view is computed in the serving copy too: its average order value must read."""
    home = built["tmp"] / "home"
    settings = Settings(warehouse=built["incremental"], home=home)
    with duckdb.connect(str(built["incremental"])) as con:
        publish_serving_copy(con, settings)
    with duckdb.connect(str(settings.serving_path), read_only=True) as con:
        average = con.execute(
            "select average_order_value from customer_traits where customer_id = 2"
        ).fetchone()
    assert average == (Decimal(13_500_000_000_000_000_000_000),)
