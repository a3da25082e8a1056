"""The micro-batch's replay of dbt's statements (customer360/pipeline/model_replay.py).

That replayed builds equal a full refresh, on the scripted and random rounds, is checked by
tests/test_serving_publish.py, which builds its rounds with the micro-batch's own step; here,
what an idle micro-batch learns.
"""

from __future__ import annotations

import threading
from pathlib import Path

from customer360.config import Settings
from customer360.pipeline.dbt_invoker import DBT_LOCK
from customer360.pipeline.microbatch import MicroBatch, MicroBatchResult
from customer360.pipeline.model_replay import models_to_build
from extractors import SOURCES
from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding, utc
from tests.test_dbt_incremental import assert_same_relations


def test_a_caught_up_micro_batch_learns_the_models_no_batch_needed_yet(tmp_path: Path) -> None:
    """After a history whose last batches landed weblogs only, the orders' models were built
    by dbt once (the first build) and never since: without learning once caught up, the first
    order of the live load would wait for two dbt builds. After caught-up batches the stream
    lets dbt build them (no new data), so that order is replayed; the warehouse still equals a
    full refresh."""
    warehouse, refreshed = tmp_path / "warehouse.duckdb", tmp_path / "full.duckdb"
    raw = RawLanding([warehouse, refreshed])
    settings = Settings(warehouse=warehouse, serving_db=tmp_path / "serving" / "serving.duckdb")
    with MicroBatch(settings.with_overrides(home=tmp_path), data_tests_every_s=None) as batch:
        raw.user("insert", 1, 1)
        raw.order("Online", "insert", 1, customer_id=1, items=[("p1", "Dress", "Dresses", 30)])
        raw.order("Instore", "insert", 2, customer_id=1, items=[("p2", "Jeans", "Jeans", 40)])
        raw.email("m1", 1, utc("2026-05-01T08:00:00"))
        raw.weblog("w1", 1)
        raw.land()
        assert batch.build_models(batch.sources_to_build()).success  # dbt: the first build
        for number in range(2, 5):  # weblogs only, until their models are replayed
            raw.weblog(f"w{number}", 1, error_message="Payment declined")
            raw.land()
            built = batch.build_models(batch.sources_to_build())
            assert built.success
        assert built.replayed
        everything = models_to_build(batch.dbt.manifest_dict(), SOURCES)
        assert "model.customer360.stg_online_orders" in batch.replay.unlearnt(everything)
        assert not batch.replays_every_model()  # the stream's data tests wait (stream.py)

        learning = []
        while (result := batch.learn_unlearnt_models(MicroBatchResult())) is not None:
            assert result.success, result.failures
            learning.append(result)
            assert len(learning) <= 2, "learning should end after two builds"
        assert batch.replay.unlearnt(everything) == []
        assert batch.replays_every_model()

        raw.order("Online", "insert", 3, customer_id=1, items=[("p3", "Top", "Tops", 20)])
        raw.land()
        built = batch.build_models(batch.sources_to_build())
        assert built.success and built.replayed, built.args

        # While dbt runs beside the batches (the stream's data tests read the warehouse), a
        # replayed build is one transaction: no test reads some of its models built and
        # others not. Otherwise the models run side by side, each its own transaction.
        in_one_transaction = []
        replay = batch.replay.replay

        def noting_replay(con, models, inputs, together=(), **kwargs):
            in_one_transaction.append(set(together) == set(models))
            return replay(con, models, inputs, together, **kwargs)

        batch.replay.replay = noting_replay
        dbt_held, dbt_done = threading.Event(), threading.Event()

        def data_tests() -> None:
            with DBT_LOCK:
                dbt_held.set()
                dbt_done.wait()

        tests_thread = threading.Thread(target=data_tests)
        tests_thread.start()
        dbt_held.wait()
        try:
            raw.weblog("w5", 1, error_message="Payment declined")
            raw.land()
            assert batch.build_models(batch.sources_to_build(), data_tests=False).replayed
        finally:
            dbt_done.set()
            tests_thread.join()
        raw.weblog("w6", 1)
        raw.land()
        assert batch.build_models(batch.sources_to_build(), data_tests=False).replayed
        assert in_one_transaction == [True, False]

        # What paces the stream's data tests (dagster_project/stream.py): called by dbt once
        # per node, as each result comes.
        results = []
        tested = batch.dbt.run(
            ["test", "--select", "stg_weblogs", "--exclude-resource-type", "unit_test"],
            after_each_node=lambda: results.append(len(results)),
        )
        assert tested.success and len(tested.tests_run) == len(results) > 0, tested.failures

    run_dbt(refreshed, "run", "--full-refresh", work_dir=tmp_path / "dbt-full")
    assert_same_relations(warehouse, refreshed)


def test_the_stream_replays_the_data_tests_with_dbts_verdicts(tmp_path: Path) -> None:
    """The stream's data tests (MicroBatch.run_data_tests): dbt runs them first, then their
    queries are replayed without dbt, with the verdicts dbt gives, and Dagster gets the same
    check evaluations either way. A data change shows in the next replay, and the stream's next
    process replays its first run too. (A new parse sends the next run back to dbt:
    tests/unit/test_data_test_replay.py.)"""
    from dagster import AssetCheckEvaluation

    from dagster_project.stream import dbt_events

    warehouse = tmp_path / "warehouse.duckdb"
    raw = RawLanding([warehouse])
    settings = Settings(warehouse=warehouse, serving_db=tmp_path / "serving" / "serving.duckdb")
    with MicroBatch(settings.with_overrides(home=tmp_path), data_tests_every_s=None) as batch:
        raw.user("insert", 1, 1)
        raw.order("Online", "insert", 1, customer_id=1, items=[("Dress", "Dresses", 30, 1)])
        raw.order("Instore", "insert", 2, customer_id=7, items=[("Jeans", "Jeans", 40, 1)])
        raw.email("m1", 1, utc("2026-05-01T08:00:00"))
        raw.weblog("w1", 1)
        raw.kafka("weblogs", "not json")  # rejected: no_rejected_records warns
        raw.land()
        assert batch.build_models(batch.sources_to_build()).success

        def checks(result) -> dict:
            return {
                (e.asset_key, e.check_name): (e.passed, e.severity)
                for e in dbt_events(batch, result)
                if isinstance(e, AssetCheckEvaluation)
            }

        paced = []
        by_dbt = batch.run_data_tests(after_each_test=lambda: paced.append(1))
        assert not by_dbt.replayed and by_dbt.success, by_dbt.failures
        replayed = batch.run_data_tests(after_each_test=lambda: paced.append(1))
        assert replayed.replayed and replayed.success, replayed.failures
        statuses = {u: s for u, s, _ in by_dbt.nodes if u.startswith("test.")}
        assert {u: s for u, s, _ in replayed.nodes} == statuses
        assert {"pass", "warn"} <= set(statuses.values())
        # dbt's messages: "Got 1 result, configured to warn if != 0"
        assert sorted(replayed.warnings) == sorted(by_dbt.warnings) != []
        assert len(paced) == 2 * len(statuses)
        assert checks(replayed) == checks(by_dbt) and len(checks(by_dbt)) == len(statuses)

        raw.order("Instore", "insert", 3, customer_id=8, items=[("Top", "Tops", 20, 2)])
        raw.land()
        assert batch.build_models(batch.sources_to_build(), data_tests=False).success
        again = batch.run_data_tests()
        assert again.replayed
        instore = "test.customer360.relationships_stg_instore_orders_customer_id"
        [failing] = [n for u, n in again.failing_rows.items() if u.startswith(instore)]
        assert failing == 2  # the orders of customers 7 and 8, who do not exist
        fingerprint = batch.dbt.manifest_fingerprint()

    # The stream's next process (a restart) parses the project again and replays its first run
    # too, from what the last one kept beside the warehouse; dbt learns again once the project
    # is another (tests/unit/test_data_test_replay.py).
    with MicroBatch(settings.with_overrides(home=tmp_path), data_tests_every_s=None) as batch:
        first = batch.run_data_tests()
        assert batch.dbt.manifest_fingerprint() == fingerprint
        assert (
            first.replayed
            and first.nodes == again.nodes
            and first.failing_rows == again.failing_rows
        )
