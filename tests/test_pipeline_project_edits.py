"""An edit of the dbt project shows without waiting for data: the audience definitions.

The stream builds when a source has landed something dbt has not taken in; an audience added
(or changed, or removed) in audience_definitions.yml while it ran waited for the next record to
land, however long that took. Now an idle micro-batch sees the project parsed anew and builds
it once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from customer360.config import Settings
from customer360.pipeline import microbatch
from customer360.pipeline.dbt_invoker import DbtInvoker
from customer360.pipeline.microbatch import MicroBatch
from extractors import SOURCES
from tests.dbt_fixtures.dbt_invoke import DBT_DIR
from tests.dbt_fixtures.raw_builder import RawLanding, utc

ANCHOR = "        audiences:\n"
ANY_BUYER = (
    "          - name: any_buyer\n            description: Everyone who ordered.\n"
    "            channel: none\n            condition: total_orders >= 1\n"
)


def members_of(batch: MicroBatch, audience: str) -> list[int]:
    return [
        c
        for (c,) in batch.con.execute(
            "select customer_id from marts.customer_audiences where audience = ? order by 1",
            [audience],
        ).fetchall()
    ]


def test_an_audience_added_while_idle_is_evaluated_without_new_data(tmp_path, monkeypatch):
    monkeypatch.setattr(microbatch, "PROJECT_CHECK_EVERY_S", 0.0)
    project = tmp_path / "dbt"
    shutil.copytree(DBT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", home=tmp_path)
    raw = RawLanding([settings.warehouse])
    raw.now = utc("2026-05-01T08:00:00")
    for customer in (1, 2, 3):
        raw.user("snapshot", customer, customer)
    raw.order("Online", "insert", 11, 1, raw.now, [("Coat", "Outerwear", 90, 1)])
    raw.order("Instore", "insert", 21, 2, raw.now, [("Hat", "Acc", 20, 1)])
    raw.land()
    with MicroBatch(settings, data_tests_every_s=None) as batch:
        batch.dbt = DbtInvoker(settings, project_dir=project)
        assert batch.build_models(batch.sources_to_build(), data_tests=False).success
        assert batch.sources_to_build() == []  # nothing new, nothing edited

        definitions = project / "models" / "marts" / "audience_definitions.yml"
        definitions.write_text(definitions.read_text().replace(ANCHOR, ANCHOR + ANY_BUYER, 1))

        assert batch.sources_to_build() == list(SOURCES)
        assert batch.build_models(batch.sources_to_build(), data_tests=False).success
        assert members_of(batch, "any_buyer") == [1, 2]
        assert batch.sources_to_build() == []  # built once


def test_no_build_is_asked_for_before_the_first_one(tmp_path):
    batch = MicroBatch.__new__(MicroBatch)
    batch._views_built_for = None
    assert batch.project_changed() is False


@pytest.fixture(autouse=True)
def _keep_the_real_project(request):
    """The edits go to a copy: the project under test is never touched."""
    before = (Path(DBT_DIR) / "models" / "marts" / "audience_definitions.yml").read_text()
    yield
    assert (Path(DBT_DIR) / "models" / "marts" / "audience_definitions.yml").read_text() == before
