"""`c360 seed` and `c360 stream`: the demo data generator's subcommands.

The main CLI calls `register(subparsers)`; each subcommand's `func(args, settings)` returns the
exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from customer360.argument_types import positive_int, positive_rate, positive_seconds
from customer360.config import Settings
from customer360.generator import records
from customer360.generator.bad_records import BAD_KINDS
from customer360.generator.event_mix import STREAM_MIX
from customer360.generator.history import SeedRefused, default_now, print_progress, seed
from customer360.generator.stream import stream


def _now(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"--now wants an ISO-8601 time such as 2026-11-27T18:00:00+00:00, not {text!r}"
        ) from error
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {value}")
    return value


def run_seed(args: argparse.Namespace, settings: Settings) -> int:
    try:
        summary = seed(
            settings,
            customers=args.customers,
            days=args.days,
            seed=args.seed,
            now=args.now,
            append=args.append,
            progress=None if args.quiet else print_progress,
            identity=args.identity,
        )
    except SeedRefused as refused:
        print(f"c360 seed: {refused}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"c360 seed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary.as_dict()) if args.json else summary.describe())
    return 0


def run_stream(args: argparse.Namespace, settings: Settings) -> int:
    try:
        summary = stream(
            settings,
            rate=args.rate,
            duration=args.duration,
            bad_share=args.bad_share,
            seed=args.seed,
            log_path=args.log,
            progress=None if args.quiet else print_progress,
            progress_every_s=args.progress_every,
            identity=args.identity,
        )
    except RuntimeError as error:
        print(f"c360 stream: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary.as_dict()) if args.json else summary.describe())
    return 1 if summary.kafka_failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `seed` and `stream` subcommands to the main CLI's subparsers."""
    seed_parser = subparsers.add_parser(
        "seed",
        help="write a year of demo history (customers, orders, emails, weblogs)",
        description=(
            "Write a consistent demo history into MongoDB (users, online_orders, "
            "instore_orders) and Kafka (weblogs, marketing_emails): N customers of a fashion "
            "brand, their orders online and in 9 stores, marketing emails with later "
            "opens/clicks, and web sessions with logins and errors. A few customers buy a lot, "
            "most buy little. The content is deterministic for the same --seed, --now, --days "
            "and --customers. Creates the Mongo indexes and the Kafka topics (3 partitions) if "
            "missing. Meant for an empty database: it refuses if `users` already has "
            "documents, unless --append is given."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    seed_parser.add_argument(
        "--customers",
        type=positive_int,
        required=True,
        default=argparse.SUPPRESS,
        help="number of customers to create",
    )
    seed_parser.add_argument(
        "--days", type=positive_int, default=365, help="days of history before --now"
    )
    seed_parser.add_argument("--seed", type=int, default=42, help="random seed")
    seed_parser.add_argument(
        "--now",
        type=_now,
        default=None,
        help="end of the history, ISO-8601 (UTC if no zone); None: the current minute, "
        f"e.g. {default_now().isoformat()}",
    )
    seed_parser.add_argument(
        "--append",
        action="store_true",
        help="add the customers after the existing ones (ids continue from the largest) "
        "instead of refusing a non-empty database",
    )
    seed_parser.add_argument(
        "--identity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="identity stitching's data: browsing anonymous until a login (a cookie id, "
        f"{records.SHARED_DEVICE_SHARE * 100:g}%% of customers on a shared device), "
        f"{records.GUEST_SALE_SHARE * 100:g}%% of in-store sales as guest sales by email; "
        "--no-identity writes every weblog and order with its user_id",
    )
    seed_parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    seed_parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    seed_parser.set_defaults(func=run_seed)

    stream_parser = subparsers.add_parser(
        "stream",
        help="keep producing live activity and bad records at a steady rate",
        description=(
            "Produce new activity at --rate events per second (one event = one Kafka record or "
            "one Mongo insert/update/delete) in the proportions of the seeded history: "
            f"{', '.join(STREAM_MIX)}. A --bad-share of the events are bad records, rotating "
            f"through {', '.join(BAD_KINDS)} (on both topics; unknown customers also as "
            "orders). Works on a seeded or an empty database: existing customers, recent "
            "orders and emails awaiting opens are discovered on start. Prints progress to "
            "stderr; Ctrl-C (or SIGTERM) stops cleanly and flushes. Prints a summary per "
            "source and kind."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    stream_parser.add_argument(
        "--rate", type=positive_rate, default=100.0, help="events per second (tested 10-5,000)"
    )
    stream_parser.add_argument(
        "--duration", type=float, default=None, help="seconds to run (None: until Ctrl-C)"
    )
    stream_parser.add_argument(
        "--bad-share", type=_share, default=0.01, help="share of events that are bad records"
    )
    stream_parser.add_argument(
        "--seed", type=int, default=None, help="random seed (None: different every run)"
    )
    stream_parser.add_argument(
        "--log",
        default=None,
        metavar="PATH",
        help="append one JSON line per record produced: source, kind, key ids (event_id; "
        "email_id + updated_at; Mongo _id and op), and for Kafka topic, partition and offset",
    )
    stream_parser.add_argument(
        "--identity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="identity stitching's data, as `c360 seed`: weblogs anonymous until the session's "
        "login (the browser's anonymous_id, shared devices), "
        f"{records.GUEST_SALE_SHARE * 100:g}%% of in-store orders as guest sales by email; "
        "--no-identity writes every weblog and order with its user_id",
    )
    stream_parser.add_argument(
        "--progress-every",
        type=positive_seconds,
        default=5.0,
        help="seconds between progress lines",
    )
    stream_parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    stream_parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    stream_parser.set_defaults(func=run_stream)
