"""Local services for development, tests and the demo: Apache Kafka (KRaft) and SecantusDB."""

from customer360.services.launcher import ServiceError, services_down, services_status, services_up

__all__ = ["ServiceError", "services_down", "services_status", "services_up"]
