"""Fixtures that start the real services once per test session.

They reuse the launcher behind `c360 services up`, on free ports and in a throwaway C360_HOME, so
tests never touch a developer's running demo. Kafka's jars are cached in the checkout's
`.c360/kafka/jars` and shared by every session.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from customer360.config import Settings
from customer360.kafka_topics import ensure_topics
from customer360.services import services_down, services_up
from customer360.services.processes import free_port

REPO = Path(__file__).resolve().parents[1]
KAFKA_JARS_CACHE = REPO / ".c360" / "kafka" / "jars"


def make_service_settings(home: Path) -> Settings:
    return Settings(
        mongo_uri=f"mongodb://127.0.0.1:{free_port()}",
        mongo_db="fashion",
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
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
