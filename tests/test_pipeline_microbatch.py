"""The micro-batch without Dagster: land, build downstream of what changed, publish, probe."""

from __future__ import annotations

import json

import pytest

from customer360.pipeline import MicroBatch
from customer360.pipeline.probe import close_probers, probe_lag
from customer360.pipeline.reconcile import reconcile
from tests.extractor_helpers import mongo_db, produce, weblog


@pytest.fixture
def batch(isolated_settings):
    with MicroBatch(isolated_settings) as batch:
        yield batch
    close_probers()


def test_microbatch_lands_builds_and_probe_sees_lag(isolated_settings, batch):
    settings = isolated_settings
    assert probe_lag(settings).never_published
    mongo_db(settings).users.insert_one({"id": 1, "first_name": "Ada", "email": "a@x.org"})
    produce(settings, "weblogs", [json.dumps(weblog(1)) for _ in range(3)])

    first = batch.run()
    assert first.success, first.summary_lines()
    assert first.extracts["weblogs"].records == 3
    assert first.extracts["users"].records == 1
    assert set(first.dbt_sources) >= {"users", "weblogs"}
    assert "model.customer360.customer_360_base" in first.models_built
    # dbt-duckdb and the extractor share the process's DuckDB instance: no lock between them.
    assert batch.con.execute("select count(*) from staging.stg_weblogs").fetchone()[0] == 3

    lag = probe_lag(settings)
    assert not lag.anything_to_do, lag.describe()
    empty = batch.run()
    assert empty.records == 0 and empty.dbt is None
    # nothing landed: nothing built and the serving copy left as it was
    assert empty.serving is not None and not empty.serving.published, empty.summary_lines()

    produce(settings, "weblogs", [json.dumps(weblog(2)) for _ in range(2)])
    mongo_db(settings).online_orders.insert_one({"user_id": 1, "items": []})
    lag = probe_lag(settings)
    assert lag.sources["weblogs"] == 2 and lag.sources["online_orders"] == 1, lag.describe()

    second = batch.run()
    assert second.success, second.summary_lines()
    # Only what the changed sources feed: users' own staging model is not rebuilt.
    assert sorted(second.dbt_sources) == ["online_orders", "weblogs"]
    assert "model.customer360.stg_weblogs" in second.models_built
    assert "model.customer360.stg_users" not in second.models_built
    assert not probe_lag(settings).anything_to_do
    # Checkpointed after it was published: the next batch does not pay for DuckDB's automatic
    # checkpoint of the log that batches left (microbatch.py, MicroBatch.checkpoint).
    wal = settings.warehouse.with_name(settings.warehouse.name + ".wal")
    assert not wal.exists() or wal.stat().st_size == 0, wal.stat().st_size
    assert second.checkpoint_seconds > 0 and empty.checkpoint_seconds == 0

    # The nightly reconciliation: a full rebuild from raw equals the incremental marts.
    report = reconcile(batch)
    assert report.matches, report.summary_lines()
    assert "customer_360" in report.marts


def _served_tables_equal_the_marts(batch: MicroBatch) -> list[str]:
    """The serving copy's tables that are marts tables too, each compared with the mart (its
    published columns); returns the ones compared. Asserts they hold the same rows."""
    con = batch.con
    con.execute(f"attach '{batch.settings.serving_path}' as served (read_only)")
    try:
        marts = {
            name
            for (name,) in con.execute(
                "select table_name from duckdb_tables()"
                " where database_name = current_database() and schema_name = 'marts'"
            ).fetchall()
        }
        compared = []
        for (table,) in con.execute(
            "select table_name from duckdb_tables() where database_name = 'served'"
        ).fetchall():
            if table not in marts:
                continue
            columns = ", ".join(
                f'"{c}"'
                for (c,) in con.execute(
                    "select column_name from duckdb_columns()"
                    " where database_name = 'served' and table_name = ?",
                    [table],
                ).fetchall()
            )
            for one, other in (("served.main", "marts"), ("marts", "served.main")):
                extra = con.execute(
                    f'select count(*) from (select {columns} from {one}."{table}"'
                    f' except all select {columns} from {other}."{table}")'
                ).fetchone()[0]
                assert extra == 0, f"{table}: {extra} rows of {one} not in {other}"
            compared.append(table)
        return compared
    finally:
        con.execute("detach served")


def test_batches_in_a_loop_publish_beside_the_next_one_and_leave_the_copy_current(
    isolated_settings, batch
):
    settings = isolated_settings
    mongo_db(settings).users.insert_many(
        [{"id": n, "first_name": f"C{n}", "email": f"c{n}@x.org"} for n in (1, 2, 3)]
    )
    results = []
    with batch.publishing_in_background():
        for n in range(5):
            produce(
                settings,
                "weblogs",
                [json.dumps(weblog(1 + (n + k) % 3, error_message=f"e{n}")) for k in range(3)],
            )
            mongo_db(settings).online_orders.insert_one(
                {
                    "user_id": 1 + n % 3,
                    "date": "2026-11-27T11:00:00Z",
                    "items": [
                        {
                            "product_id": "p",
                            "product_name": "Scarf",
                            "category": "c",
                            "price": 10.5,
                            "quantity": 1 + n,
                        }
                    ],
                }  # fmt: skip
            )
            result = batch.run()
            assert result.success, result.summary_lines()
            results.append(result)
    # A batch hands its publication to the thread and goes on: the first has none to report.
    assert results[0].serving is None
    assert any(r.serving is not None and r.serving.published for r in results[1:])
    # Leaving the loop finished the last one: the copy holds every batch.
    assert {"customer_360_base", "customer_popular_items"} <= set(
        _served_tables_equal_the_marts(batch)
    )
    # Outside the loop a batch publishes itself again.
    produce(settings, "weblogs", [json.dumps(weblog(2, error_message="after"))])
    after = batch.run()
    assert after.serving is not None and after.serving.published, after.summary_lines()
    _served_tables_equal_the_marts(batch)
