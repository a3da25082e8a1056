"""Run the customer360 dbt project in-process against a given DuckDB warehouse file."""

from __future__ import annotations

import os
from pathlib import Path

from dbt.cli.main import dbtRunner, dbtRunnerResult

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt"

MARTS = (
    "customer_details",
    "customer_purchase_stats",
    "customer_popular_items",
    "customer_activity",
    "customer_recent_errors",
    "customer_360",
)


def run_dbt(warehouse: Path, *args: str, work_dir: Path) -> dbtRunnerResult:
    """`dbt <args>` on `warehouse`, with target and logs under `work_dir`; raises on failure.

    C360_WAREHOUSE is read by profiles.yml when dbt parses, so it is set for the call and put
    back afterwards.
    """
    previous = os.environ.get("C360_WAREHOUSE")
    os.environ["C360_WAREHOUSE"] = str(warehouse)
    try:
        result = dbtRunner().invoke(
            [
                *args,
                "--project-dir",
                str(DBT_DIR),
                "--profiles-dir",
                str(DBT_DIR),
                "--target-path",
                str(work_dir / "target"),
                "--log-path",
                str(work_dir / "logs"),
                "--quiet",
            ]
        )
    finally:
        if previous is None:
            os.environ.pop("C360_WAREHOUSE", None)
        else:
            os.environ["C360_WAREHOUSE"] = previous
    if not result.success:
        failures = []
        for node in getattr(result.result, "results", None) or []:
            if str(node.status) not in ("success", "pass", "warn", "skipped"):
                failures.append(f"{node.node.unique_id}: {node.status}: {node.message}")
        raise AssertionError(
            f"dbt {' '.join(args)} failed on {warehouse}: {result.exception}\n"
            + "\n".join(failures)
        )
    return result
