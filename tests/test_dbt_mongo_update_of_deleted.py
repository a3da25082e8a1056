"""An update whose document was deleted before the change stream looked it up is no bad record.

The extractors read an update's document with `updateLookup`: MongoDB looks the document up when
the stream reaches the change, and gives none once it is deleted. So an update followed quickly
by a delete lands as an update without a document, then the delete. Staging listed such updates
in stg_rejected_records as "document is missing" (and the `no_rejected_records` warning fired on
correct data); they carry no state and are skipped instead.

Landed, worked out by hand:
- batch 1: customers 1 and 2 (users documents), an online order of each (10 and 20);
- batch 2: customer 1's document updated (landed without its document) and deleted; customer
  2's order updated without its document, its delete not landed yet; an in-store order inserted
  without a document (an insert always carries one: still "document is missing");
- batch 3: customer 2's order deleted.
Expected: only the in-store insert is rejected; after batch 2 customer 1 is deleted and customer
2 keeps its order of 20 as it was (not a state of nulls); after batch 3 customer 2 has no order;
an incremental build equals a full refresh.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding, object_id


def _read(warehouse: Path) -> dict:
    with duckdb.connect(str(warehouse)) as con:
        return {
            "rejected": con.execute(
                "select source, reason from staging.stg_rejected_records order by all"
            ).fetchall(),
            "landed": con.execute(
                "select source, sum(landed_records), sum(rejected_records)"
                " from staging.stg_landing_batches where source in ('users', 'online_orders',"
                " 'instore_orders') group by source order by source"
            ).fetchall(),
            "users": con.execute(
                "select customer_id, first_name, is_deleted from staging.stg_users order by 1"
            ).fetchall(),
            "orders": con.execute(
                "select customer_id, is_deleted from staging.stg_online_orders order by 1"
            ).fetchall(),
            "details": con.execute(
                "select customer_id from marts.customer_details order by 1"
            ).fetchall(),
            "stats": con.execute(
                "select customer_id, channel, amount_spent from marts.customer_purchase_stats"
                " order by 1, 2"
            ).fetchall(),
        }


def test_an_update_of_a_deleted_document_is_skipped_not_rejected(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    raw = RawLanding([warehouse])
    raw.user("snapshot", 1, 1, first_name="Ann")
    raw.user("snapshot", 2, 2, first_name="Ben")
    raw.order("Online", "insert", 11, 1, items=[("Coat", "Outerwear", 10, 1)])
    raw.order("Online", "insert", 12, 2, items=[("Hat", "Accessories", 20, 1)])
    raw.land()
    run_dbt(warehouse, "run", work_dir=tmp_path)

    raw.tick()
    raw.mongo("users", "update", object_id(1), None)
    raw.user("delete", 1, 1)
    raw.mongo("online_orders", "update", object_id(12), None)
    raw.mongo("instore_orders", "insert", object_id(31), None)
    raw.land()
    run_dbt(warehouse, "run", work_dir=tmp_path)

    after_two = _read(warehouse)
    assert after_two["rejected"] == [("instore_orders", "document is missing")]
    assert after_two["landed"] == [
        ("instore_orders", 1, 1),
        ("online_orders", 3, 0),
        ("users", 4, 0),
    ]
    assert after_two["users"] == [(1, "Ann", True), (2, "Ben", False)]
    assert after_two["orders"] == [(1, False), (2, False)]
    assert after_two["details"] == [(2,)]
    assert [(c, ch, float(a)) for c, ch, a in after_two["stats"]] == [(2, "Online", 20.0)]

    raw.tick()
    raw.order("Online", "delete", 12)
    raw.land()
    run_dbt(warehouse, "run", work_dir=tmp_path)
    incremental = _read(warehouse)
    assert incremental["orders"] == [(1, False), (2, True)]
    assert incremental["stats"] == []

    run_dbt(warehouse, "run", "--full-refresh", work_dir=tmp_path)
    assert _read(warehouse) == incremental
