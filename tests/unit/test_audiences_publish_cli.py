"""`c360 audiences publish --once` with Kafka away: one line saying so, not a traceback, nor
librdkafka's own line for every failed connection attempt before it (~300 in 15 s)."""

from __future__ import annotations

import functools

import customer360.audiences.publisher as publisher
from customer360.cli import build_parser
from customer360.config import Settings
from customer360.services.processes import free_kafka_port


def test_publish_once_without_kafka_says_where_it_looked(tmp_path, monkeypatch, capfd):
    bootstrap = f"127.0.0.1:{free_kafka_port()}"  # nothing listens there
    # The wait for Kafka (15 s) is the publisher's; a test need not sit through it.
    monkeypatch.setattr(
        publisher, "ensure_topic", functools.partial(publisher.ensure_topic, timeout_s=1.0)
    )
    args = build_parser().parse_args(["audiences", "publish", "--once"])
    assert args.func(args, Settings(home=tmp_path, kafka_bootstrap=bootstrap)) == 1
    err = capfd.readouterr().err  # what the terminal shows: librdkafka writes to fd 2 itself
    assert err.startswith(
        f"c360 audiences publish: Kafka at {bootstrap} did not answer within 1 s; is it running?"
    )
    assert len(err.splitlines()) == 1
