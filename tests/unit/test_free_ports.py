"""Free ports for services started on a test's (or the bench's) own ports."""

from __future__ import annotations

import socket

from customer360.services.processes import free_kafka_port


def test_a_kafka_port_has_its_controller_port_free_too() -> None:
    for _ in range(20):
        port = free_kafka_port()
        with socket.socket() as broker, socket.socket() as controller:
            broker.bind(("127.0.0.1", port))
            controller.bind(("127.0.0.1", port + 1))
