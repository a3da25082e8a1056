"""The project's lean `incremental` materialization (dbt/macros/materializations/incremental.sql).

A normal incremental run sends one SQL batch (temp table, strategy, post-hooks) in place of
dbt-duckdb's several statements, and must keep dbt's `on_schema_change` semantics: `fail` (the
staging models) fails with a clear error and changes nothing; `ignore` (the others) inserts only
the target's columns. First builds and full refreshes go through dbt-duckdb's materialization
(the other tests cover them).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding, utc


@pytest.fixture(scope="module")
def built_once(tmp_path_factory) -> tuple[Path, RawLanding]:
    """A warehouse with one customer and a weblog event, built once (first build)."""
    work_dir = tmp_path_factory.mktemp("lean")
    path = work_dir / "warehouse.duckdb"
    raw = RawLanding([path])
    raw.now = utc("2026-05-01T08:00:00")
    raw.user("snapshot", 1, 1, first_name="Ann")
    raw.weblog("ev-1", 1)
    raw.land()
    run_dbt(path, "run", work_dir=work_dir / "dbt")
    return path, raw


@pytest.fixture
def built(built_once: tuple[Path, RawLanding], tmp_path: Path) -> tuple[Path, RawLanding]:
    """A copy of that warehouse for one test, and a landing that goes on from its raw data."""
    original, raw = built_once
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(original, path)
    wal = original.with_name(original.name + ".wal")  # dbt may keep the original open
    if wal.exists():
        shutil.copyfile(wal, path.with_name(path.name + ".wal"))
    landing = copy.deepcopy(raw)
    landing.warehouses = [path]
    return path, landing


def run_sql(tmp_path: Path, model_path: str) -> str:
    """The `main` statement dbt ran last for a model."""
    return (tmp_path / "dbt" / "target" / "run" / "customer360" / "models" / model_path).read_text()


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).fetchall()


@pytest.mark.parametrize(
    "change, column",
    [
        ("add column extra_column integer", "extra_column"),
        ("drop column page", "page"),
        ("alter column session_id type blob", "session_id"),
    ],
)
def test_fail_on_schema_change_fails_and_changes_nothing(
    built: tuple[Path, RawLanding], tmp_path: Path, change: str, column: str
) -> None:
    path, raw = built
    query(path, f"alter table staging.stg_weblogs {change}")
    raw.tick()
    raw.weblog("ev-2", 1)
    raw.land()
    with pytest.raises(AssertionError) as failure:
        run_dbt(path, "run", "--select", "stg_weblogs", work_dir=tmp_path / "dbt")
    message = str(failure.value)
    assert "out of sync" in message and column in message, message
    # The batch is rolled back: the new event is not there.
    assert query(path, "select event_id from staging.stg_weblogs") == [("ev-1",)]


def test_ignore_inserts_the_target_columns(built: tuple[Path, RawLanding], tmp_path: Path) -> None:
    path, raw = built
    # The target has a column the model lacks, and lacks one the model has.
    query(
        path,
        "alter table marts.customer_360_base add column extra_column integer;"
        " alter table marts.customer_360_base drop column _weblogs_batch_id",
    )
    raw.tick()
    raw.weblog("ev-2", 1, page="login_success.html")
    raw.land()
    run_dbt(path, "run", work_dir=tmp_path / "dbt")
    rows = query(
        path,
        "select customer_id, last_website_login_at is not null, extra_column"
        " from marts.customer_360_base",
    )
    assert rows == [(1, True, None)]
    # The lean path ran (one batch, insert by name) and so did the post-hook, in the same batch.
    main = run_sql(tmp_path, "marts/customer_360_base.sql")
    assert "by name" in main and "dbt_watermarks" in main
    staged = query(path, "select max(_batch_id) from staging.stg_weblogs")[0][0]
    marks = query(
        path,
        "select batch_id from intermediate.dbt_watermarks"
        " where model = 'customer_360_base' and source = 'weblogs'",
    )
    assert marks == [(staged,)]
