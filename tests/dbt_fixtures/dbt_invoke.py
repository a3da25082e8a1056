"""Run the customer360 dbt project in-process against a given DuckDB warehouse file.

The project is parsed once per test session and database name (DuckDB names a warehouse's
database after its file: `warehouse.duckdb` -> `warehouse`, and the manifest holds that name);
every invocation then reuses the parsed manifest, as the pipeline's `DbtInvoker` does, instead
of parsing again.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dbt.cli.main import dbtRunner, dbtRunnerResult

from customer360.pipeline.dbt_invoker import RUN_ARGS

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt"

MARTS = (
    "customer_details",
    "customer_purchase_stats",
    "customer_popular_items",
    "customer_activity",
    "customer_recent_errors",
    "customer_360",
)

# The pipeline's per-run flags (no manifest.json / run_results.json rewritten each run), and no
# dbt.log: nobody reads a test's, and writing it was ~10 % of a run of this project.
TEST_RUN_ARGS = [*RUN_ARGS, "--log-level-file", "none"]

# Parsed manifests by database name.
_manifests: dict[str, object] = {}

# One dbt target directory per database name for this process (a test worker): dbt keeps its
# partial-parse file there, so the next parse of the project for that name re-reads only what
# changed (~2 s, not ~10 s). tests/conftest.py points the pipeline's DbtInvoker here too.
_SHARED_TARGETS = Path(tempfile.mkdtemp(prefix="c360-dbt-targets-"))
atexit.register(shutil.rmtree, _SHARED_TARGETS, ignore_errors=True)


def shared_target_dir(database: str) -> Path:
    """The target directory every parse for a warehouse of this database name uses."""
    return _SHARED_TARGETS / database / "target"


@contextmanager
def _warehouse_env(warehouse: Path) -> Iterator[None]:
    """C360_WAREHOUSE (read by profiles.yml) set for the call and put back afterwards."""
    previous = os.environ.get("C360_WAREHOUSE")
    os.environ["C360_WAREHOUSE"] = str(warehouse)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("C360_WAREHOUSE", None)
        else:
            os.environ["C360_WAREHOUSE"] = previous


def _paths(work_dir: Path) -> list[str]:
    return [
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


def parsed_manifest(warehouse: Path):
    """The project parsed for a warehouse of this file name (once per session)."""
    database = warehouse.stem
    if database not in _manifests:
        parse_dir = shared_target_dir(database).parent
        with _warehouse_env(warehouse):
            result = dbtRunner().invoke(["parse", *_paths(parse_dir)])
        if not result.success:
            raise AssertionError(f"dbt parse failed: {result.exception}")
        _manifests[database] = result.result
    return _manifests[database]


def run_dbt(warehouse: Path, *args: str, work_dir: Path) -> dbtRunnerResult:
    """`dbt <args>` on `warehouse`, with target and logs under `work_dir`; raises on failure."""
    manifest = parsed_manifest(warehouse)
    with _warehouse_env(warehouse):
        result = dbtRunner(manifest=manifest).invoke([*args, *TEST_RUN_ARGS, *_paths(work_dir)])
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
