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
