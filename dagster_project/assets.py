"""Assets: the raw landing tables (extractors) and the dbt models, one lineage graph.

dbt runs in-process with a cached manifest (`customer360.pipeline.DbtInvoker`), not through the
`dbt` CLI subprocess; its structured result events are turned into Dagster events by
dagster-dbt's own `DbtCoreCliEventMessage`, so materializations and dbt tests as asset checks
look exactly as with `DbtCliResource`.
"""

import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from dagster_dbt import DagsterDbtTranslator, DbtProject, dbt_assets
from dagster_dbt.asset_utils import get_asset_check_key_for_test
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

from customer360.config import Settings
from customer360.pipeline.dbt_invoker import (
    DBT_PROJECT_DIR,
    DbtBuildResult,
    DbtInvoker,
    dbt_target_dir,
)
from dagster_project.resources import MicroBatchResource
from extractors import SOURCES, BatchResult

RAW_GROUP = "raw"
# Marts older than this warn / fail their freshness (new data lands within seconds when it flows).
MARTS_FRESHNESS = FreshnessPolicy.time_window(
    fail_window=timedelta(hours=1), warn_window=timedelta(minutes=15)
)


def raw_key(source: str) -> AssetKey:
    return AssetKey(["raw", source])


class Customer360Translator(DagsterDbtTranslator):
    """Models keyed `<schema>/<name>` (`marts/customer_360`); dbt sources are the raw assets,
    but for a source naming its asset in `meta.dagster.asset_key` (the propensity model)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            if dbt_resource_props.get("source_name") != RAW_GROUP:
                return super().get_asset_key(dbt_resource_props)
            return raw_key(dbt_resource_props["name"])
        return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_asset_spec(self, manifest, unique_id, project) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.key.path[0] == "marts":
            spec = spec.replace_attributes(freshness_policy=MARTS_FRESHNESS)
        return spec

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return RAW_GROUP
        return dbt_resource_props["schema"]


TRANSLATOR = Customer360Translator()

RAW_SPECS = [
    AssetSpec(
        raw_key(source),
        group_name=RAW_GROUP,
        skippable=True,
        kinds={"duckdb"},
        description=f"raw.{source}: landed by the extractors (extractors/landing_schema.py).",
    )
    for source in SOURCES
]


def landing_metadata(result: BatchResult) -> dict[str, Any]:
    """What a raw asset's materialization says of one extract."""
    return {
        "records": result.records,
        "quarantined": result.quarantined,
        "bytes": result.bytes,
        "lag": MetadataValue.int(result.remaining_lag)
        if result.remaining_lag is not None
        else MetadataValue.text("unknown"),
        "batch_id": MetadataValue.int(result.batch_id)
        if result.batch_id is not None
        else MetadataValue.text("none: nothing new"),
        "position_after": MetadataValue.text(result.position_after or ""),
        "seconds": round(result.seconds, 3),
    }


@multi_asset(specs=RAW_SPECS, can_subset=True, name="raw_landing")
def raw_landing(context: AssetExecutionContext, pipeline: MicroBatchResource) -> Iterator:
    """One bounded extract of every selected source.

    Every extracted source reports a materialization, `records` 0 when nothing was new: a
    skipped output would make Dagster skip the dbt step, which must still run (dbt may owe a
    build from an earlier micro-batch). A source whose extract failed reports none.
    """
    batch = pipeline.microbatch()
    selected = tuple(s for s in SOURCES if raw_key(s) in context.selected_asset_keys)
    results, errors = batch.extract(selected)
    for source, result in results.items():
        context.log.info(result.summary_line())
        yield MaterializeResult(asset_key=raw_key(source), metadata=landing_metadata(result))
    # Sources that did land are still built: the dbt step fails the run afterwards.
    batch.last_extract_errors = errors
    for source, error in errors.items():
        context.log.error(f"extract {source} failed: {error}")


def views_reflecting(manifest: Mapping[str, Any], built: set[str]) -> list[str]:
    """The view models dbt did not run whose inputs (directly or through other views) it
    rebuilt: `built` holds the unique ids of the models that ran."""
    nodes = manifest["nodes"]
    views = {
        uid
        for uid, node in nodes.items()
        if node["resource_type"] == "model" and node["config"]["materialized"] == "view"
    }
    fresh = set(built)
    reflecting: list[str] = []
    changed = True
    while changed:  # views over views: repeat until nothing new is found
        changed = False
        for uid in sorted(views - fresh):
            if fresh.intersection(nodes[uid]["depends_on"]["nodes"]):
                fresh.add(uid)
                reflecting.append(uid)
                changed = True
    return reflecting


# (dbt unique id, Dagster event): which node of the lineage an event speaks for.
NodeEvent = tuple[str, Any]


def dbt_result_events(
    context: AssetExecutionContext,
    project: DbtProject,
    manifest: Mapping[str, Any],
    result: DbtBuildResult,
    target_path: Path,
) -> Iterator[NodeEvent]:
    """What each node dbt ran becomes in Dagster, as dagster-dbt converts it."""
    for raw_event in result.events:
        unique_id = raw_event["data"]["node_info"]["unique_id"]
        event = DbtCoreCliEventMessage(raw_event=raw_event, event_history_metadata={})
        for dagster_event in event.to_default_asset_events(
            manifest=manifest,
            dagster_dbt_translator=TRANSLATOR,
            context=context,
            target_path=target_path,
            project=project,
        ):
            yield unique_id, dagster_event


# What a model's materialization says when the micro-batch replayed its statements.
REPLAYED_METADATA = {
    "dbt": "the statements dbt sent in this model's last builds, run again by the micro-batch "
    "(customer360/pipeline/model_replay.py)"
}


def replayed_models(
    manifest: Mapping[str, Any], result: DbtBuildResult
) -> Iterator[tuple[str, AssetKey]]:
    """The models of a replayed build with their asset keys (a replay has no dbt events)."""
    if result.replayed:
        for unique_id in result.models_built:
            yield unique_id, TRANSLATOR.get_asset_key(manifest["nodes"][unique_id])


# What a data test's check evaluation says when the stream replayed its query.
REPLAYED_TEST_METADATA = {
    "dbt": "the query dbt sent for this test in its last run of the data tests, run again by the "
    "stream, dbt's verdict taken from its row (customer360/pipeline/data_test_replay.py)"
}


def replayed_test_checks(
    manifest: Mapping[str, Any], result: DbtBuildResult
) -> Iterator[AssetCheckEvaluation]:
    """A check evaluation for each data test of a replayed run (a replay has no dbt events),
    keyed and judged as dagster-dbt's translation of dbt's test results does."""
    if not result.replayed:
        return
    for unique_id, status in result.tests_run:
        # The function dagster-dbt's own events call for a test's check.
        key = get_asset_check_key_for_test(manifest, TRANSLATOR, unique_id, project=None)
        if key is None:  # dagster-dbt reports such a test as an observation, not a check
            continue
        failing = result.failing_rows.get(unique_id)
        yield AssetCheckEvaluation(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=status == "pass",
            severity=AssetCheckSeverity.WARN if status == "warn" else AssetCheckSeverity.ERROR,
            metadata={
                "unique_id": unique_id,
                "status": status,
                **({} if failing is None else {"dagster_dbt/failed_row_count": failing}),
                **REPLAYED_TEST_METADATA,
            },
        )


def view_events(
    manifest: Mapping[str, Any], built: set[str], selected: Iterable[AssetKey]
) -> Iterator[NodeEvent]:
    """A materialization of each selected view that reads what dbt rebuilt.

    A micro-batch does not re-create views (they read their inputs when queried), but a view is
    as new as its inputs: reporting it keeps lineage and freshness true.
    """
    for unique_id in views_reflecting(manifest, built):
        key = TRANSLATOR.get_asset_key(manifest["nodes"][unique_id])
        if key in selected:
            yield (
                unique_id,
                MaterializeResult(
                    asset_key=key,
                    metadata={"dbt": "view: not re-created, it reads the rebuilt models"},
                ),
            )


def in_lineage_order(manifest: Mapping[str, Any], events: Iterable[NodeEvent]) -> list[Any]:
    """The events ordered by the manifest's lineage: every model after the models it reads, and
    a test's check result after the models it tests.

    Dagster fails a step that yields an asset after one that depends on it. dbt reports nodes as
    its threads finish them, and the views a micro-batch reports are known only once the build
    is over, so neither order can be trusted as it comes.
    """
    lineage = TopologicalSorter(manifest["parent_map"]).static_order()
    rank = {unique_id: position for position, unique_id in enumerate(lineage)}
    return [event for _, event in sorted(events, key=lambda node_event: rank[node_event[0]])]


def dbt_project_for(settings: Settings) -> DbtProject:
    """The dbt project, its manifest parsed (in-process) into C360_HOME if missing or stale."""
    DbtInvoker(settings).ensure_manifest_file()
    return DbtProject(project_dir=DBT_PROJECT_DIR, target_path=dbt_target_dir(settings))


def build_dbt_assets(project: DbtProject):
    manifest_path: Path = project.manifest_path

    @dbt_assets(
        manifest=manifest_path,
        project=project,
        dagster_dbt_translator=TRANSLATOR,
        name="dbt_models",
    )
    def dbt_models(context: AssetExecutionContext, pipeline: MicroBatchResource) -> Iterator:
        """Every model selected: the micro-batch's build (downstream of sources with new
        batches, data tests only if their checks are selected). Some models: `dbt build` of
        those. Checks only: `dbt test`."""
        batch = pipeline.microbatch()
        selected = context.selected_asset_keys
        if not selected:
            result = batch.dbt.run(["test", "--exclude-resource-type", "unit_test"])
        elif selected == dbt_models.keys:  # this decorated function's full definition
            sources = batch.sources_to_build()
            context.log.info("building downstream of: %s", ", ".join(sources) or "nothing")
            result = batch.build_models(sources, data_tests=bool(context.selected_asset_check_keys))
        else:
            result = batch.dbt.build([key.path[-1] for key in selected])
        if result is not None:
            manifest = batch.dbt.manifest_dict()
            events = itertools.chain(
                dbt_result_events(context, project, manifest, result, batch.dbt.target_dir),
                (
                    (unique_id, MaterializeResult(asset_key=key, metadata=REPLAYED_METADATA))
                    for unique_id, key in replayed_models(manifest, result)
                ),
                view_events(manifest, set(result.models_built), selected),
            )
            yield from in_lineage_order(manifest, events)
        batch.publish()
        problems = [f"extract {s}: {e}" for s, e in batch.last_extract_errors.items()]
        batch.last_extract_errors = {}
        if result is not None and not result.success:
            problems += result.failures or [f"dbt {' '.join(result.args)}: {result.error}"]
        if problems:
            raise Failure(
                "micro-batch failed",
                metadata={"problems": MetadataValue.md("\n".join(f"- {p}" for p in problems))},
            )

    return dbt_models
