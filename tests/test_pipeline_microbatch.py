"""The micro-batch without Dagster: land, build downstream of what changed, publish, probe."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pytest

from customer360.chaos.oracle import expected_marts, marts_rows, read_sources
from customer360.chaos.verify import compare_marts
from customer360.generator.history import seed
from customer360.pipeline import MicroBatch, microbatch
from customer360.pipeline.microbatch import DISABLED_OPTIMIZERS, duckdb_threads
from customer360.pipeline.probe import close_probers, probe_lag
from customer360.pipeline.reconcile import reconcile
from extractors import SOURCES
from tests.extractor_helpers import mongo_db, produce, weblog


@pytest.fixture
def batch(isolated_settings):
    with MicroBatch(isolated_settings) as batch:
        yield batch
    close_probers()


def test_microbatch_lands_builds_and_probe_sees_lag(isolated_settings, batch, monkeypatch):
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
    # The log is checkpointed after a batch is published once it passes CHECKPOINT_WAL_BYTES,
    # so DuckDB's own checkpoint (at 16 MiB, inside a commit) never comes first
    # (microbatch.py, MicroBatch.checkpoint_due): not after a small batch, then after the one
    # that takes it past the threshold.
    wal = settings.warehouse.with_name(settings.warehouse.name + ".wal")
    assert 0 < wal.stat().st_size < microbatch.CHECKPOINT_WAL_BYTES
    assert second.checkpoint_seconds == 0 and empty.checkpoint_seconds == 0
    monkeypatch.setattr(microbatch, "CHECKPOINT_WAL_BYTES", wal.stat().st_size + 1)
    produce(settings, "weblogs", [json.dumps(weblog(3))])
    third = batch.run()
    assert third.success and third.checkpoint_seconds > 0, third.summary_lines()
    assert not wal.exists() or wal.stat().st_size == 0, wal.stat().st_size

    # The nightly reconciliation: a full rebuild from raw equals the incremental marts.
    report = reconcile(batch)
    assert report.matches, report.summary_lines()
    assert "customer_360" in report.marts


def test_a_backlog_lands_the_next_batch_beside_the_build(isolated_settings):
    """While a backlog drains, the next batch is landed beside a replayed build (microbatch.py,
    MicroBatch.run): every record is landed and built once, and the marts equal a
    full rebuild."""
    settings = isolated_settings
    with MicroBatch(settings, max_records=100, data_tests_every_s=None) as batch:
        mongo_db(settings).users.insert_one({"id": 1, "first_name": "Ada", "email": "a@x.org"})
        assert batch.run().success  # the first build, by dbt
        for _ in range(3):  # dbt's builds with no new data, until the replay knows every model
            if batch.replays_every_model():
                break
            assert batch.build_models(list(SOURCES), data_tests=False).success
        assert batch.replays_every_model()

        produce(settings, "weblogs", [json.dumps(weblog(1)) for _ in range(250)])
        results, threads = [], []
        for _ in range(4):
            results.append(batch.run())
            (setting,) = batch.con.execute("select current_setting('threads')").fetchone()
            threads.append(int(setting))
        for result in results:
            assert result.success, result.summary_lines()
        assert [r.extracts["weblogs"].records for r in results] == [100, 100, 50, 0]
        assert [r.landed_ahead for r in results[:2]] == [False, True]
        assert not results[3].landed_ahead
        # The third is landed beside the second's build, when the second had one (see below).
        assert results[2].landed_ahead == (results[1].dbt is not None)
        # published once the backlog is drained, not while it drains
        assert [r.publish_deferred for r in results] == [True, True, False, False]
        # Each build replayed. A batch landed beside a build can commit before that build's
        # staging models start reading the landing tables: they then take it in whole (in one
        # transaction, MicroBatch._replay), and the next batch finds nothing left to build.
        assert results[0].dbt is not None
        assert all(r.dbt is None or r.dbt.replayed for r in results[:3])
        assert results[2].serving is not None and results[2].serving.published
        assert "landed beside the previous batch's build" in "\n".join(results[1].summary_lines())
        # DuckDB's threads: all of them for the backlog's full batches, each replay
        # connection's share once drained (microbatch.duckdb_threads).
        (all_cores,) = duckdb.connect().execute("select current_setting('threads')").fetchone()
        share = duckdb_threads(int(all_cores), backlog=False)
        assert threads == [int(all_cores)] * 2 + [share] * 2
        (disabled,) = batch.con.execute("select current_setting('disabled_optimizers')").fetchone()
        assert disabled == DISABLED_OPTIMIZERS

        con = batch.con
        assert con.execute("select count(*) from staging.stg_weblogs").fetchone()[0] == 250
        offsets = con.execute(
            'select count(distinct ("partition", "offset")) from raw.weblogs'
        ).fetchone()[0]
        assert offsets == 250
        assert not probe_lag(settings).anything_to_do
        report = reconcile(batch)
        assert report.matches, report.summary_lines()
    close_probers()


def test_a_history_drained_in_small_batches_landed_ahead_equals_the_oracle(isolated_settings):
    """All five sources (the generator's history, identity data included) drained in batches
    small enough that most are landed beside the previous build: the marts equal what the
    chaos soak's independent oracle computes from the sources, and a full rebuild."""
    settings = isolated_settings
    history = seed(settings, customers=80, days=30, now=datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    assert history.weblogs > 250  # batches of 25: ten and more
    results = []
    with MicroBatch(settings, max_records=25, data_tests_every_s=None) as batch:
        for _ in range(300):
            result = batch.run()
            assert result.success, result.summary_lines()
            results.append(result)
            if not result.records and not result.landed_ahead:
                break
        landed_ahead = [r for r in results if r.landed_ahead]
        assert len(landed_ahead) >= 3, [r.summary_lines()[-1] for r in results]
        landed = {s for r in landed_ahead for s, e in r.extracts.items() if e.records}
        assert "weblogs" in landed, landed
        con = batch.con
        expected = expected_marts(read_sources(settings, con))
        assert compare_marts(expected, marts_rows(con), "oracle vs marts").examples == []
        report = reconcile(batch)
        assert report.matches, report.summary_lines()
    close_probers()
