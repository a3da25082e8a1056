"""`c360 services up | down | status`: the local Kafka and MongoDB, started once, found by pid."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from customer360.addresses import redact_uri
from customer360.config import Settings
from customer360.services.kafka import KafkaService
from customer360.services.mongo import MongoService
from customer360.services.processes import ServiceError

log = logging.getLogger(__name__)

__all__ = ["ServiceError", "ServiceState", "services_up", "services_down", "services_status"]


@dataclass(frozen=True)
class ServiceState:
    name: str
    address: str
    pid: int | None
    answering: bool
    log_file: str

    def line(self) -> str:
        if self.pid is not None:
            state = "running" if self.answering else "started, not answering"
            return (
                f"{self.name:<6} {state:<22} pid {self.pid:<8} {self.address}  log {self.log_file}"
            )
        if self.answering:
            return f"{self.name:<6} {'answering (not ours)':<22} {'':<12} {self.address}"
        return f"{self.name:<6} {'stopped':<22} {'':<12} {self.address}"


def _services(settings: Settings):
    return MongoService(settings), KafkaService(settings)


def services_up(settings: Settings) -> list[ServiceState]:
    """Start what is not running yet and wait until both answer. Safe to call twice."""
    mongo, kafka = _services(settings)
    for name, service in (("mongo", mongo), ("kafka", kafka)):
        started = service.start()
        log.info("%s %s", name, "started" if started else "already running")
    return services_status(settings)


def services_down(settings: Settings) -> list[str]:
    """Stop only the processes `up` started (by pid file). Returns the names stopped."""
    stopped = []
    for name, service in zip(("kafka", "mongo"), reversed(_services(settings)), strict=True):
        if service.stop():
            stopped.append(name)
    return stopped


def services_status(settings: Settings) -> list[ServiceState]:
    mongo, kafka = _services(settings)
    return [
        ServiceState(
            "mongo",
            redact_uri(settings.mongo_uri),
            mongo.running_pid(),
            mongo.ready(),
            str(mongo.process.log_file),
        ),
        ServiceState(
            "kafka",
            settings.kafka_bootstrap,
            kafka.running_pid(),
            kafka.ready(),
            str(kafka.process.log_file),
        ),
    ]
