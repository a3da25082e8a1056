"""Nightly: rebuild the marts from raw into a scratch database and compare with the live ones.

The result is an asset check on every mart (`matches_full_rebuild`): it fails, naming some of
the differing customer ids, when the incrementally built mart is not what a full rebuild gives.
"""

from collections.abc import Iterator, Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    MetadataValue,
    ScheduleDefinition,
    define_asset_job,
    in_process_executor,
    multi_asset_check,
)

from customer360.pipeline.reconcile import reconcile
from dagster_project.resources import MicroBatchResource

RECONCILE_JOB = "reconcile_marts"
RECONCILE_CHECK = "matches_full_rebuild"


def build_reconciliation(mart_keys: Sequence[AssetKey], writer_tags: dict[str, str]):
    """The reconciliation check over `mart_keys`, its job and its nightly schedule."""

    @multi_asset_check(
        specs=[
            AssetCheckSpec(
                RECONCILE_CHECK,
                asset=key,
                description="Equal, row for row, to the same mart rebuilt from raw with "
                "--full-refresh in a scratch database (nightly).",
            )
            for key in mart_keys
        ],
        name="reconcile_marts_check",
    )
    def reconcile_marts_check(
        context: AssetCheckExecutionContext, pipeline: MicroBatchResource
    ) -> Iterator[AssetCheckResult]:
        result = reconcile(pipeline.microbatch())
        for line in result.summary_lines():
            context.log.info(line)
        context.log.info(f"reconciled {len(result.marts)} marts in {result.seconds:.1f} s")
        for key in mart_keys:
            comparison = result.marts.get(key.path[-1])
            if comparison is None:
                failures = "\n".join(result.dbt.failures if result.dbt else []) or "no detail"
                yield AssetCheckResult(
                    asset_key=key,
                    check_name=RECONCILE_CHECK,
                    passed=False,
                    severity=AssetCheckSeverity.ERROR,
                    description="not compared: the full rebuild from raw failed",
                    metadata={"dbt failures": MetadataValue.md(failures)},
                )
                continue
            yield AssetCheckResult(
                asset_key=key,
                check_name=RECONCILE_CHECK,
                passed=comparison.equal,
                severity=AssetCheckSeverity.ERROR,
                description=None
                if comparison.equal
                else f"differs from a full rebuild, e.g. customers {comparison.differing_keys}",
                metadata={
                    "live rows": comparison.live_rows,
                    "rebuilt rows": comparison.rebuilt_rows,
                    "rows only live": comparison.only_live,
                    "rows only rebuilt": comparison.only_rebuilt,
                    "differing customer ids": MetadataValue.json(comparison.differing_keys),
                    "seconds": round(result.seconds, 1),
                },
            )

    job = define_asset_job(
        RECONCILE_JOB,
        selection=AssetSelection.checks(reconcile_marts_check),
        executor_def=in_process_executor,
        tags=writer_tags,
        description="Rebuild every model from raw with --full-refresh in a scratch database and "
        "compare each mart with the live, incrementally built one (asset checks).",
    )
    schedule = ScheduleDefinition(
        name="reconcile_marts_schedule",
        job=job,
        cron_schedule="30 3 * * *",
        default_status=DefaultScheduleStatus.RUNNING,
    )
    return reconcile_marts_check, job, schedule
