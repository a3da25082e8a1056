"""The micro-batch job through Dagster, for every combination of sources landing together.

Which models a micro-batch builds, and which views it reports as refreshed, depend on which
sources brought new records; Dagster accepts a step's assets only parents first. So each
source alone runs, every pair (a wrong order is between two assets, each downstream of some
sources), all five, and none. One warehouse takes them all, batch after batch, as in
production, where only the first batch re-creates the views.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetKey, DagsterInstance

from customer360.generator.catalog import CAMPAIGNS, PRODUCTS
from customer360.generator.records import (
    email_record,
    iso,
    make_instore_order,
    make_items,
    make_online_order,
    make_user,
    profile_change,
)
from customer360.pipeline.microbatch import close_warm_microbatches
from customer360.pipeline.probe import close_probers
from dagster_project.assets import raw_key
from dagster_project.build import MICROBATCH_JOB, build_definitions
from extractors import SOURCES
from tests.extractor_helpers import mongo_db, produce, weblog

# Each source alone, every pair, all five, then none at all.
COMBINATIONS = [
    *(c for size in (1, 2) for c in itertools.combinations(SOURCES, size)),
    tuple(SOURCES),
    (),
]


class SourceChanges:
    """Writes a few new records to one source at a time, as the applications would.

    MongoDB collections get two inserts, an update and a delete of documents landed earlier;
    marketing emails get two sends and an open and a click of an email sent earlier.
    """

    def __init__(self, settings):
        self.settings = settings
        self.db = mongo_db(settings)
        self.rng = random.Random(360)
        self.now = datetime(2026, 11, 27, 10, tzinfo=UTC)
        self.next_customer_id = 1
        self.next_email = 1
        self.sent: list[dict] = []

    def write(self, source: str) -> None:
        self.now += timedelta(minutes=1)
        getattr(self, source)()

    def _mongo(
        self, collection: str, make: Callable[[], dict], change: Callable[[dict], dict]
    ) -> None:
        docs = self.db[collection]
        earlier = list(docs.find())
        docs.insert_many([make(), make()])
        if len(earlier) >= 2:
            updated, deleted = earlier[-1], earlier[0]
            docs.update_one({"_id": updated["_id"]}, {"$set": change(updated)})
            docs.delete_one({"_id": deleted["_id"]})

    def users(self) -> None:
        def new_user():
            user = make_user(self.rng, self.next_customer_id, self.now)
            self.next_customer_id += 1
            return user

        def change(user):
            return {**profile_change(self.rng, user), "updated_at": self.now}

        self._mongo("users", new_user, change)

    def _customer(self) -> int:
        return self.rng.randint(1, max(self.next_customer_id - 1, 1))

    def online_orders(self) -> None:
        self._mongo(
            "online_orders",
            lambda: make_online_order(self.rng, self._customer(), self.now, None),
            lambda order: {"status": "returned"},
        )

    def instore_orders(self) -> None:
        self._mongo(
            "instore_orders",
            lambda: make_instore_order(self.rng, self._customer(), self.now, None),
            lambda order: {"items": make_items(self.rng)},
        )

    def weblogs(self) -> None:
        user_id = self._customer()
        events = [weblog(user_id, date=iso(self.now), page=p) for p in ("home.html", "cart.html")]
        produce(self.settings, "weblogs", [json.dumps(e) for e in events], key=str(user_id))

    def marketing_emails(self) -> None:
        records = []
        for _ in range(2):
            email = email_record(
                f"e{self.next_email}", self._customer(), self.now, self.rng.choice(CAMPAIGNS),
                [PRODUCTS[0].product_name], opened=False, clicked=False, updated_at=self.now,
            )  # fmt: skip
            self.next_email += 1
            self.sent.append(email)
            records.append(email)
        if len(self.sent) > 2:
            earlier = self.sent.pop(0)
            opened = self.now + timedelta(seconds=10)
            records.append({**earlier, "email_opened": True, "updated_at": iso(opened)})
            clicked = opened + timedelta(seconds=30)
            records.append(
                {**earlier, "email_opened": True, "email_clicked": True,
                 "updated_at": iso(clicked)}
            )  # fmt: skip
        produce(self.settings, "marketing_emails", [json.dumps(r) for r in records])


def downstream_of(graph, keys: set[AssetKey], within: set[AssetKey]) -> set[AssetKey]:
    """Every asset of `within` that reads `keys`, directly or through other assets of `within`
    (the job's: the nightly propensity model reads the marts, but a micro-batch does not train
    it, nor rebuild what reads it alone)."""
    found: set[AssetKey] = set()
    todo = list(keys)
    while todo:
        for child in graph.get(todo.pop()).child_keys:
            if child in within and child not in found:
                found.add(child)
                todo.append(child)
    return found


def why_failed(result) -> str:
    return "; ".join(
        f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
        for event in result.get_step_failure_events()
    )


@pytest.fixture
def defs(isolated_settings):
    yield build_definitions(isolated_settings)
    close_warm_microbatches()
    close_probers()


@pytest.mark.timeout(600)
def test_combinations_of_sources_materialize_what_lineage_says(isolated_settings, defs):
    graph = defs.resolve_asset_graph()
    job = defs.resolve_job_def(MICROBATCH_JOB)
    changes = SourceChanges(isolated_settings)
    problems = []
    with DagsterInstance.ephemeral() as instance:
        # The first batch creates every model and view, from records of every source.
        for source in SOURCES:
            changes.write(source)
        assert job.execute_in_process(instance=instance).success

        for combination in COMBINATIONS:
            for source in combination:
                changes.write(source)
            result = job.execute_in_process(instance=instance, raise_on_error=False)
            if not result.success:
                problems.append(f"{combination}: {why_failed(result)}")
                continue
            landed = {
                m.asset_key: m.metadata["records"].value
                for m in result.asset_materializations_for_node("raw_landing")
            }
            # Every source is extracted; only the written ones bring records.
            assert set(landed) == {raw_key(s) for s in SOURCES}, combination
            assert {k for k, records in landed.items() if records} == {
                raw_key(s) for s in combination
            }, combination
            built = {m.asset_key for m in result.asset_materializations_for_node("dbt_models")}
            expected = downstream_of(
                graph, {raw_key(s) for s in combination}, job.asset_layer.selected_asset_keys
            )
            assert built == expected, (combination, built ^ expected)
    assert not problems, "\n".join(problems)
