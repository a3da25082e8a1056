"""Where `c360 services` starts and looks for Kafka and MongoDB, read from the configured URIs."""

from __future__ import annotations

from customer360.addresses import kafka_host_port, mongo_host_port
from customer360.config import Settings
from customer360.services.kafka import KafkaService


def test_a_kafka_bootstrap_without_a_port_is_port_9092_as_librdkafka_takes_it(tmp_path):
    # `C360_KAFKA_BOOTSTRAP=localhost` was a ValueError traceback from every `c360 services`.
    assert kafka_host_port("localhost") == ("localhost", 9092)
    assert kafka_host_port("broker.example.com, other:9093") == ("broker.example.com", 9092)
    kafka = KafkaService(Settings(kafka_bootstrap="localhost", home=tmp_path))
    assert (kafka.host, kafka.port, kafka.controller_port) == ("localhost", 9092, 9093)


def test_ports_given_are_kept():
    assert kafka_host_port("127.0.0.1:19092,127.0.0.1:19094") == ("127.0.0.1", 19092)
    assert mongo_host_port("mongodb://u:p@db.local:27117/?replicaSet=rs0") == ("db.local", 27117)
    assert mongo_host_port("mongodb://db.local/?replicaSet=rs0") == ("db.local", 27017)
