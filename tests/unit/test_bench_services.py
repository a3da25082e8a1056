"""`c360 bench` whose own services cannot start says why in one line and stops the one that did."""

from __future__ import annotations

import customer360.services as services
from customer360.cli import build_parser
from customer360.config import Settings
from customer360.services import ServiceError

NO_JAVA = "Java 17+ is needed to run Apache Kafka and `java` is not on PATH."


def test_bench_reports_services_that_could_not_start_and_stops_what_started(
    tmp_path, monkeypatch, capsys
):
    stopped = []

    def mongo_started_then_kafka_failed(settings):
        raise ServiceError(NO_JAVA)

    monkeypatch.setattr(services, "services_up", mongo_started_then_kafka_failed)
    monkeypatch.setattr(services, "services_down", lambda settings: stopped.append(settings.home))
    out = tmp_path / "out"
    args = build_parser().parse_args(["bench", "--out", str(out)])
    assert args.func(args, Settings(home=tmp_path / "home")) == 1
    assert capsys.readouterr().err == f"c360 bench: the services could not start: {NO_JAVA}\n"
    assert stopped == [out.resolve() / "home"]
