"""Resources, configured from the project's `Settings` (C360_* environment variables)."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from customer360.config import Settings
from customer360.pipeline.microbatch import MicroBatch, warm_microbatch


class MongoSourceResource(ConfigurableResource):
    """The MongoDB whose change streams feed raw.users, raw.online_orders, raw.instore_orders."""

    uri: str
    database: str


class KafkaSourceResource(ConfigurableResource):
    """The Kafka cluster whose topics feed raw.weblogs and raw.marketing_emails."""

    bootstrap: str
    topic_prefix: str = ""


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse file, and C360_HOME where dbt's target and state live."""

    path: str
    home: str


class MicroBatchResource(ConfigurableResource):
    """The pipeline: hands out this process's warm `MicroBatch` for the configured sources."""

    mongo: MongoSourceResource
    kafka: KafkaSourceResource
    warehouse: WarehouseResource

    def settings(self) -> Settings:
        return Settings(
            mongo_uri=self.mongo.uri,
            mongo_db=self.mongo.database,
            kafka_bootstrap=self.kafka.bootstrap,
            kafka_topic_prefix=self.kafka.topic_prefix,
            warehouse=Path(self.warehouse.path),
            home=Path(self.warehouse.home),
        )

    def microbatch(self) -> MicroBatch:
        return warm_microbatch(self.settings())


def pipeline_resource(settings: Settings) -> MicroBatchResource:
    return MicroBatchResource(
        mongo=MongoSourceResource(uri=settings.mongo_uri, database=settings.mongo_db),
        kafka=KafkaSourceResource(
            bootstrap=settings.kafka_bootstrap, topic_prefix=settings.kafka_topic_prefix
        ),
        warehouse=WarehouseResource(path=str(settings.warehouse), home=str(settings.home)),
    )
