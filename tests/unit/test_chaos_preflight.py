"""`c360 chaos` restarts the services of its C360_HOME as faults: without them it says so at once,
instead of a traceback from the seed (services down) or at the first restart (not its own)."""

from __future__ import annotations

from customer360.cli import build_parser
from customer360.config import Settings
from customer360.services.processes import free_kafka_port, free_port


def test_chaos_without_its_services_says_which_and_what_to_run(tmp_path, capsys):
    settings = Settings(
        home=tmp_path,
        mongo_uri=f"mongodb://127.0.0.1:{free_port()}",
        kafka_bootstrap=f"127.0.0.1:{free_kafka_port()}",
    )
    args = build_parser().parse_args(["chaos", "--duration", "5"])
    assert args.func(args, settings) == 1
    assert capsys.readouterr().err == (
        "c360 chaos: it restarts the Kafka and MongoDB that `c360 services up` started for "
        f"C360_HOME={tmp_path}, and mongo at {settings.mongo_uri} is stopped and kafka at "
        f"{settings.kafka_bootstrap} is stopped: run `c360 services up` with this C360_HOME (and "
        "ports of its own) first\n"
    )
    assert not (tmp_path / "chaos").exists()  # no run began
