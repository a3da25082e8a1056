"""`c360 audiences publish`: the audience changes to Kafka, exactly once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from customer360.argument_types import seconds
from customer360.config import Settings


def _publish_command(args: argparse.Namespace, settings: Settings) -> int:
    from confluent_kafka import KafkaException

    from customer360.audiences.publisher import run

    try:
        sent = run(
            settings,
            source=args.source,
            once=args.once,
            interval_s=args.interval,
            pause_before_commit=args.pause_before_commit,
        )
    except (KafkaException, RuntimeError) as exc:
        # What `run` gives up on (Kafka away with --once, two histories on one topic): its
        # message says what to do.
        print(f"c360 audiences publish: {exc}", file=sys.stderr)
        return 1
    if args.once:
        print(f"audience_changes: {sent} published")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "audiences",
        help="audiences: publish their entries and exits to Kafka",
        description="Audiences are defined in dbt/models/marts/audience_definitions.yml.",
    )
    commands = parser.add_subparsers(dest="audiences_command", required=True)
    publish = commands.add_parser(
        "publish",
        help="publish marts.audience_changes to the Kafka topic audience_changes, exactly once",
        description="Reads audience_changes from the serving copy (C360_SERVING_DB) and "
        "publishes every entry and exit exactly once to the topic <prefix>audience_changes "
        "(transactional producer; the position is read back from the topic). Consumers read "
        "with isolation.level=read_committed.",
    )
    publish.add_argument("--once", action="store_true", help="publish what is pending, then exit")
    publish.add_argument(
        "--interval", type=seconds, default=1.0, help="seconds between rounds when idle (default 1)"
    )
    publish.add_argument(
        "--source",
        type=Path,
        help="a DuckDB file with audience_changes (default: the serving copy)",
    )
    publish.add_argument(
        "--pause-before-commit",
        type=Path,
        help=argparse.SUPPRESS,  # fault injection for tests: write this file, then hang
    )
    publish.set_defaults(func=_publish_command)
