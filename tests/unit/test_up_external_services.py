"""`c360 up --external-services`: the demo on Kafka and MongoDB someone else runs (docker
compose), which the local launcher refuses since another process holds their ports."""

from __future__ import annotations

import pytest

from customer360 import demo
from customer360.cli import build_parser
from customer360.config import Settings
from customer360.services.launcher import ServiceState
from customer360.services.processes import free_port


class Seeding(Exception):
    """Raised where `c360 up` goes on to seed: the services were accepted."""


def _settings(tmp_path) -> Settings:
    return Settings(home=tmp_path, serve_port=free_port(), sql_port=free_port())


def _states(mongo: bool, kafka: bool) -> list[ServiceState]:
    return [
        ServiceState("mongo", "mongodb://127.0.0.1:27017", None, mongo, "mongo.log"),
        ServiceState("kafka", "127.0.0.1:9092", None, kafka, "kafka.log"),
    ]


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch):
    monkeypatch.setattr(demo, "services_up", lambda settings: pytest.fail("launcher used"))

    def seed_if_empty(settings, customers, days):
        raise Seeding

    monkeypatch.setattr(demo, "_seed_if_empty", seed_if_empty)


def test_up_uses_services_that_answer_without_starting_any(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "services_status", lambda settings: _states(True, True))
    args = build_parser().parse_args(["up", "--external-services", "--ui-port", str(free_port())])
    with pytest.raises(Seeding):
        args.func(args, _settings(tmp_path))
    assert "answering (not ours)" in capsys.readouterr().out


def test_up_names_the_external_service_that_does_not_answer(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "services_status", lambda settings: _states(False, True))
    args = build_parser().parse_args(["up", "--external-services", "--ui-port", str(free_port())])
    assert args.func(args, _settings(tmp_path)) == 1
    assert capsys.readouterr().err == (
        "c360 up: the services could not start: mongo at mongodb://127.0.0.1:27017 did not "
        "answer (--external-services): start them (docker compose up -d), or leave the option "
        "out to start the local ones\n"
    )
