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

from datetime import datetime
from pathlib import Path

import duckdb

from customer360.chaos.oracle import as_timestamp
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


# Each names 2026-05-01 10:00 UTC (macro parse_utc_timestamp lists the forms read).
ISO_FORMS = {
    "extended": "2026-05-01T10:00:00Z",
    "lower-case t and z (RFC 3339)": "2026-05-01t10:00:00z",
    "space separator, offset": "2026-05-01 12:00:00+02:00",
    "offset without colon": "2026-05-01T12:00:00+0200",
    "comma before the fraction": "2026-05-01T10:00:00,0Z",
    "basic format": "20260501T100000Z",
    "basic format, comma, offset": "20260501T120000,0+0200",
    "no offset, newline after": "2026-05-01T10:00:00\n",
    "no offset, tab after": "2026-05-01T10:00:00\t",
    "tab before": "\t2026-05-01T10:00:00",
}
NOT_TIMESTAMPS = ("May 1st", "2026-05-01T10:00:00ZZ", "infinity", "")


def test_iso_8601_forms_are_read_as_one_instant_by_staging_and_the_oracle(tmp_path: Path) -> None:
    """Every form of ISO-8601 / RFC 3339 the macro documents types to the same UTC instant, in
    staging and in the chaos oracle's independent reading; text in no such form is rejected
    ('date is not a timestamp') by both."""
    warehouse = tmp_path / "warehouse.duckdb"
    raw = RawLanding([warehouse])
    raw.user("snapshot", 1, 1)
    for name, date in ISO_FORMS.items():
        raw.kafka("weblogs", {"event_id": name, "user_id": 1, "date": date, "page": "p.html"})
    for number, date in enumerate(NOT_TIMESTAMPS):
        raw.kafka("weblogs", {"event_id": f"bad-{number}", "user_id": 1, "date": date})
    raw.land()
    run_dbt(warehouse, "run", work_dir=tmp_path)
    expected = datetime(2026, 5, 1, 10, 0)
    with duckdb.connect(str(warehouse)) as con:
        typed = dict(con.execute("select event_id, event_at from staging.stg_weblogs").fetchall())
        rejected = con.execute(
            "select count(*) from staging.stg_rejected_records"
            " where source = 'weblogs' and reason = 'date is not a timestamp'"
        ).fetchone()[0]
    assert typed == dict.fromkeys(ISO_FORMS, expected)
    assert rejected == len(NOT_TIMESTAMPS)
    assert {name: as_timestamp(date) for name, date in ISO_FORMS.items()} == typed
    assert [as_timestamp(date) for date in NOT_TIMESTAMPS] == [None] * len(NOT_TIMESTAMPS)
