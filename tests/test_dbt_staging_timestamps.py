"""Timestamps staging cannot type are rejected with the reason, never a failed build.

Landed (one batch), worked out by hand:
- customer 1: a users document and an online order of 10 (a normal profile);
- customer 2: a users document; an online order dated "-infinity" (DuckDB's timestamptz cast
  accepts it, and the order once reached customer_traits, whose view then failed for every
  reader: "INT64 ... out of range for INT32"); a marketing email sent "infinity";
  weblogs dated {"$date": {"$numberLong": "9223372036854775807"}} and {"$date":
  -9223372036854775807} (milliseconds no timestamp holds: epoch_ms raised and stg_weblogs and
  stg_landing_batches failed every build).
Expected: the build succeeds; those four records are in stg_rejected_records, each with "date
is not a timestamp"; staging holds customer 1's order only and no weblog or email; the
customer_360 and customer_traits views read for both customers.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding, object_id

LINE_ITEM = {
    "product_id": "P-Coat", "product_name": "Coat", "category": "Outerwear", "price": 10,
    "quantity": 1,
}  # fmt: skip


def test_timestamps_out_of_range_are_rejected_not_a_failed_build(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    raw = RawLanding([warehouse])
    raw.user("snapshot", 1, 1)
    raw.user("snapshot", 2, 2)
    raw.order("Online", "insert", 11, 1, items=[("Coat", "Outerwear", 10, 1)])
    raw.mongo(
        "online_orders",
        "insert",
        object_id(21),
        {"user_id": 2, "date": "-infinity", "items": [LINE_ITEM], "status": "delivered"},
    )
    raw.email("m1", 2, "infinity")
    raw.kafka(
        "weblogs",
        {"event_id": "w1", "user_id": 2, "date": {"$date": {"$numberLong": str(2**63 - 1)}}},
    )
    raw.kafka("weblogs", {"event_id": "w2", "user_id": 2, "date": {"$date": -(2**63 - 1)}})
    raw.land()

    run_dbt(warehouse, "run", work_dir=tmp_path)

    with duckdb.connect(str(warehouse)) as con:
        rejected = con.execute(
            "select source, position, reason from staging.stg_rejected_records order by all"
        ).fetchall()
        assert rejected == [
            ("marketing_emails", "marketing_emails/0@0", "date is not a timestamp"),
            ("online_orders", f"{object_id(21)}@{_cluster_time(con, object_id(21))}",
             "date is not a timestamp"),
            ("weblogs", "weblogs/0@0", "date is not a timestamp"),
            ("weblogs", "weblogs/0@1", "date is not a timestamp"),
        ]  # fmt: skip
        orders = con.execute("select customer_id from staging.stg_online_orders").fetchall()
        assert orders == [(1,)]
        for model in ("stg_weblogs", "stg_marketing_emails"):
            assert con.execute(f"select count(*) from staging.{model}").fetchone()[0] == 0
        for view in ("customer_360", "customer_traits"):
            customers = con.execute(f"select customer_id from marts.{view} order by 1").fetchall()
            assert customers == [(1,), (2,)], view


def _cluster_time(con: duckdb.DuckDBPyConnection, document_key: str) -> int:
    return con.execute(
        "select cluster_time from raw.online_orders where document_key = ?", [document_key]
    ).fetchone()[0]
