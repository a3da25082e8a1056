"""The Dagster definitions: asset graph, the micro-batch sensor, the micro-batch job."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    EventRecordsFilter,
)

from customer360.bench.dagster_stream import StreamLog
from customer360.pipeline.dagster_home import prepare_dagster_home
from customer360.pipeline.dbt_invoker import DbtInvoker
from customer360.pipeline.heartbeat import read_beat
from customer360.pipeline.microbatch import close_warm_microbatches, warm_microbatch
from customer360.pipeline.probe import close_probers
from dagster_project import stream as stream_module
from dagster_project.build import DATA_TESTS_JOB, MICROBATCH_JOB, build_definitions
from dagster_project.stream import STREAM_JOB
from extractors import SOURCES
from tests.extractor_helpers import mongo_db, produce, weblog


@pytest.fixture
def defs(isolated_settings):
    yield build_definitions(isolated_settings)
    close_warm_microbatches()
    close_probers()


def test_every_raw_table_and_dbt_model_is_an_asset_and_dbt_tests_are_checks(
    isolated_settings, defs
):
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    manifest = DbtInvoker(isolated_settings).manifest_dict()
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert models
    for model in models:
        assert AssetKey([model["schema"], model["name"]]) in keys, model["unique_id"]
    for source in SOURCES:
        raw = AssetKey(["raw", source])
        assert raw in keys
        # dbt's sources are the raw assets: raw -> staging -> marts is one graph.
        assert any(c.path[0] == "staging" for c in graph.get(raw).child_keys), source
    assert AssetKey(["raw", "weblogs"]) in graph.upstream_key_iterator(
        AssetKey(["staging", "stg_weblogs"])
    )
    # A Mongo document's current state is computed from its typed changes.
    for collection in ("users", "online_orders", "instore_orders"):
        changes = AssetKey(["staging", f"stg_{collection}_changes"])
        assert graph.get(changes).parent_keys == {AssetKey(["raw", collection])}
        assert graph.get(AssetKey(["staging", f"stg_{collection}"])).parent_keys == {changes}
    tests = [n for n in manifest["nodes"].values() if n["resource_type"] == "test"]
    check_keys = graph.asset_check_keys
    assert len([k for k in check_keys]) >= len(tests) > 0
    job = defs.resolve_job_def(MICROBATCH_JOB)
    assert job.tags.get("c360/writer") == "warehouse"
    assert defs.resolve_job_def(DATA_TESTS_JOB).tags.get("c360/writer") == "warehouse"
    assert defs.resolve_job_def("reconcile_marts").tags.get("c360/writer") == "warehouse"
    assert defs.resolve_schedule_def("reconcile_marts_schedule").cron_schedule == "30 3 * * *"
    # The nightly reconciliation is an asset check on every mart.
    for mart in ("customer_360", "customer_purchase_stats", "customer_recent_errors"):
        assert AssetCheckKey(AssetKey(["marts", mart]), "matches_full_rebuild") in check_keys
    # The purchase-propensity model: an asset trained nightly by a writer job, upstream of
    # the scores (dbt's ml source is that asset).
    model = AssetKey(["ml", "propensity_model"])
    assert model in keys
    assert model in graph.upstream_key_iterator(
        AssetKey(["staging", "stg_propensity_coefficients"])
    )
    assert defs.resolve_job_def("propensity_training").tags.get("c360/writer") == "warehouse"
    schedule = defs.resolve_schedule_def("propensity_training_schedule")
    assert schedule.cron_schedule == "0 3 * * *"
    sensor = defs.resolve_sensor_def("microbatch_sensor")
    assert sensor.job_name == STREAM_JOB
    assert sensor.default_status.value == "RUNNING"
    assert sensor.minimum_interval_seconds == 5


def check_evaluations(instance) -> list:
    records = instance.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION), limit=1000
    )
    return [r.event_log_entry.dagster_event.event_specific_data for r in records]


def test_the_stream_run_lands_builds_reports_each_batch_and_yields_to_a_waiting_writer(
    isolated_settings, defs, tmp_path, monkeypatch
):
    """The live pipeline: one run doing micro-batches back to back; each batch's changes appear
    as asset materializations while the run goes on, the data tests as asset check evaluations;
    a writer queued behind it ends it."""
    monkeypatch.setattr(stream_module, "FIRST_DATA_TESTS_AFTER_S", 0.0)
    monkeypatch.setattr(stream_module, "DATA_TESTS_SHARE", 0.5)  # paced, not for long
    settings = isolated_settings
    mongo_db(settings).users.insert_one({"id": 3, "first_name": "Ada", "email": "a@x.org"})
    produce(settings, "weblogs", [json.dumps(weblog(3)) for _ in range(4)])
    stream = defs.resolve_job_def(STREAM_JOB)
    assert stream.tags.get("c360/writer") == "warehouse"
    home = prepare_dagster_home(settings.with_overrides(home=tmp_path / "dagster-home"))
    with DagsterInstance.from_config(str(home)) as instance:
        outcome = {}
        runner = threading.Thread(
            target=lambda: outcome.update(result=stream.execute_in_process(instance=instance))
        )
        runner.start()

        def materialized(key: AssetKey, at_least: int = 1) -> list:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                events = instance.fetch_materializations(key, 100).records
                if len(events) >= at_least:
                    return events
                time.sleep(0.2)
            raise AssertionError(f"{key} not materialized {at_least} times")

        weblogs = materialized(AssetKey(["raw", "weblogs"]))[0].asset_materialization
        assert weblogs.metadata["records"].value == 4
        materialized(AssetKey(["marts", "customer_360"]))
        deadline = time.monotonic() + 120
        while len(checks := check_evaluations(instance)) < 50:
            assert time.monotonic() < deadline, f"{len(checks)} data test results reported"
            time.sleep(0.5)
        assert all(check.passed for check in checks), [c.check_name for c in checks]

        # The run goes on: a new record lands in a later batch, reported in its turn.
        produce(settings, "weblogs", [json.dumps(weblog(3))])
        later = materialized(AssetKey(["raw", "weblogs"]), at_least=2)
        assert {e.asset_materialization.metadata["records"].value for e in later} == {4, 1}
        assert runner.is_alive()
        deadline = time.monotonic() + 30  # the heartbeat is rewritten every 2 s
        while (beat := read_beat(settings)) is None or beat.batches < 2:
            assert time.monotonic() < deadline, beat
            time.sleep(0.2)

        # A writer waiting for the warehouse (here, the data tests) ends the stream's run.
        instance.add_run(
            DagsterRun(
                job_name=DATA_TESTS_JOB,
                run_id=str(uuid.uuid4()),
                status=DagsterRunStatus.NOT_STARTED,
                tags={"c360/writer": "warehouse"},
            )
        )
        runner.join(120)
        assert not runner.is_alive()
        assert outcome["result"].success

        # The data tests' log line, as `c360 bench` and `c360 chaos` read it from the run.
        log = StreamLog(instance)
        log.refresh()
        (tests, *_) = log.data_tests()
        assert tests.succeeded and tests.run >= 50 and not tests.failures, tests
        assert tests.passed + sum(n for _, n in tests.not_passed) == tests.run, tests
        assert len(tests.warned) == dict(tests.not_passed).get("warn", 0), tests


def test_microbatch_job_lands_sources_and_builds_marts(isolated_settings, defs):
    settings = isolated_settings
    mongo_db(settings).users.insert_one({"id": 7, "first_name": "Grace", "email": "g@x.org"})
    produce(settings, "weblogs", [json.dumps(weblog(7)) for _ in range(5)])
    job = defs.resolve_job_def(MICROBATCH_JOB)
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.success
        materialized = {
            m.asset_key: m for m in result.asset_materializations_for_node("raw_landing")
        }
        weblogs = materialized[AssetKey(["raw", "weblogs"])]
        assert weblogs.metadata["records"].value == 5
        assert weblogs.metadata["lag"].value == 0
        assert AssetKey(["raw", "users"]) in materialized
        built = {m.asset_key for m in result.asset_materializations_for_node("dbt_models")}
        assert AssetKey(["marts", "customer_360"]) in built
        assert AssetKey(["staging", "stg_weblogs"]) in built

        # The next micro-batch does not re-create the views, but reports them with their inputs.
        produce(settings, "weblogs", [json.dumps(weblog(7))])
        again = job.execute_in_process(instance=instance)
        assert again.success
        views = {
            m.asset_key: m
            for m in again.asset_materializations_for_node("dbt_models")
            if "dbt" in m.metadata
        }
        assert set(views) >= {
            AssetKey(["marts", "customer_360"]),
            AssetKey(["marts", "customer_activity"]),
            AssetKey(["marts", "customer_recent_errors"]),
        }
        # Data tests are not part of a micro-batch: their own job reports them as checks.
        assert not result.get_asset_check_evaluations()
        tests = defs.resolve_job_def(DATA_TESTS_JOB).execute_in_process(instance=instance)
        assert tests.success
        checks = tests.get_asset_check_evaluations()
        assert len(checks) > 50 and all(c.passed for c in checks), [
            c.check_name for c in checks if not c.passed
        ]
        assert not tests.get_asset_materialization_events()

        # The reconciliation check: the marts equal a full rebuild from raw.
        reconciled = defs.resolve_job_def("reconcile_marts").execute_in_process(instance=instance)
        assert reconciled.success
        evaluations = reconciled.get_asset_check_evaluations()
        assert {e.asset_key for e in evaluations} >= {AssetKey(["marts", "customer_360"])}
        assert all(e.passed for e in evaluations)

        # Nothing new: the job still succeeds, lands nothing and builds nothing.
        again = job.execute_in_process(instance=instance)
        assert again.success
        landed = again.asset_materializations_for_node("raw_landing")
        assert landed and all(m.metadata["records"].value == 0 for m in landed)
        assert not again.asset_materializations_for_node("dbt_models")
    con = warm_microbatch(settings).con
    assert con.execute("select count(*) from staging.stg_weblogs").fetchone()[0] == 6
