"""Fixtures that start the real services once per test session, and the `services` marker.

They reuse the launcher behind `c360 services up`, on free ports and in a throwaway C360_HOME, so
tests never touch a developer's running demo. Kafka's jars are cached in the checkout's
`.c360/kafka/jars` and shared by every session.

A test that needs Kafka or MongoDB is marked `services`: automatically when it uses one of
SERVICE_FIXTURES (directly or through another fixture), by hand (`pytestmark` or
`@pytest.mark.services`) when it starts services itself. `pytest -m "not services"` runs the rest,
and a test there that starts Kafka or MongoDB fails, naming the marker it is missing.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from customer360.config import Settings
from customer360.kafka_topics import ensure_topics
from customer360.pipeline import dbt_invoker
from customer360.services import services_down, services_up
from customer360.services.kafka import KafkaService
from customer360.services.mongo import MongoService
from customer360.services.processes import free_kafka_port, free_port
from tests.dbt_fixtures.dbt_invoke import shared_target_dir

REPO = Path(__file__).resolve().parents[1]
KAFKA_JARS_CACHE = REPO / ".c360" / "kafka" / "jars"

# Fixtures that start Kafka and MongoDB (or use the ones started): a test using any is `services`.
SERVICE_FIXTURES = frozenset({"live_settings", "isolated_settings"})


# The fast tier's slowest modules (dbt builds, ~10-70 s each), slowest first. pytest-xdist with
# `--dist loadscope --no-loadscope-reorder` hands modules out in collection order, a module to
# whichever worker is free: started first, the long ones end together with the short ones that
# fill in around them (in its own order, by number of tests, a 15 s module came last and one
# worker ran it alone).
SLOWEST_MODULES = (
    "test_dbt_incremental.py",
    "test_serving_publish.py",
    "test_serving_profiles.py",
    "test_dbt_hand_checked.py",
    "test_dbt_replay.py",
    "test_dbt_rules_random.py",
    "test_dbt_identity_hand_checked.py",
    "test_propensity.py",
    "test_dbt_audiences.py",
    "test_bi_postgres.py",
)


def _slowest_first(item: pytest.Item) -> int:
    name = item.path.name
    return SLOWEST_MODULES.index(name) if name in SLOWEST_MODULES else len(SLOWEST_MODULES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=_slowest_first)  # stable: each module's tests keep their order


@pytest.fixture(autouse=True)
def _no_services_unless_marked(request, monkeypatch) -> None:
    """A test not marked `services` may not start Kafka or MongoDB (the fast tier stays fast)."""
    if request.node.get_closest_marker("services") is not None:
        return

    def refuse(service, *args, **kwargs):
        raise AssertionError(
            f"{request.node.nodeid} starts {type(service).__name__} but is not marked `services`;"
            " add `@pytest.mark.services` (or `pytestmark = pytest.mark.services` in its file)"
        )

    monkeypatch.setattr(MongoService, "start", refuse)
    monkeypatch.setattr(KafkaService, "start", refuse)


@pytest.fixture(autouse=True)
def _dbt_parses_shared(monkeypatch) -> None:
    """The micro-batch's dbt (DbtInvoker) keeps its target directory, with dbt's partial-parse
    file, under C360_HOME; every test has a home of its own, so each would parse the project in
    full (~10 s). In this process they share one per warehouse file name instead, and dbt
    re-reads only what changed. (Subprocesses, such as `c360 up`'s, keep their own.)"""

    def shared(settings: Settings) -> Path:
        return shared_target_dir(settings.warehouse.stem).resolve()

    monkeypatch.setattr(dbt_invoker, "dbt_target_dir", shared)
    monkeypatch.setattr("dagster_project.assets.dbt_target_dir", shared)


def make_service_settings(home: Path) -> Settings:
    return Settings(
        mongo_uri=f"mongodb://127.0.0.1:{free_port()}",
        mongo_db="fashion",
        kafka_bootstrap=f"127.0.0.1:{free_kafka_port()}",
        warehouse=home / "warehouse.duckdb",
        home=home,
        kafka_jars=KAFKA_JARS_CACHE,
    )


@pytest.fixture(scope="session")
def live_settings(tmp_path_factory) -> Settings:
    """Settings pointing at a MongoDB and a Kafka started for this test session."""
    settings = make_service_settings(tmp_path_factory.mktemp("c360-home"))
    services_up(settings)
    yield settings
    services_down(settings)


@pytest.fixture
def isolated_settings(live_settings: Settings, tmp_path: Path) -> Settings:
    """The session's services, with a database, topics and warehouse of this test's own."""
    suffix = uuid.uuid4().hex[:8]
    settings = live_settings.with_overrides(
        mongo_db=f"fashion_{suffix}",
        kafka_topic_prefix=f"t{suffix}_",
        warehouse=tmp_path / "warehouse.duckdb",
    )
    ensure_topics(settings)
    return settings
