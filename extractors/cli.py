"""`c360 extract`: land new source records into the warehouse, once or continuously."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from customer360.argument_types import seconds
from customer360.config import Settings
from extractors.runner import DEFAULT_MAX_RECORDS, DEFAULT_MAX_SECONDS, SOURCES, Extractor

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="land new MongoDB changes and Kafka records into the warehouse",
        description="Land new records of the sources into the raw schema of C360_WAREHOUSE, "
        "exactly once: MongoDB by change stream (a first run copies the collection), Kafka from "
        "the offsets stored in the warehouse. Bad Kafka records go to raw.quarantine with the "
        "reason. Prints one summary line per source and batch.",
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        action="append",
        help="a source to extract (repeatable; default: all five)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--once", action="store_true", help="one batch per source, then exit (the default)"
    )
    mode.add_argument(
        "--follow",
        action="store_true",
        help="keep extracting every --interval seconds until Ctrl-C",
    )
    parser.add_argument(
        "--interval",
        type=seconds,
        default=1.0,
        help="seconds between rounds with --follow (default 1)",
    )
    parser.add_argument(
        "--max-records",
        type=int,
        default=DEFAULT_MAX_RECORDS,
        help=f"records per batch and source at most (default {DEFAULT_MAX_RECORDS})",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help=f"seconds per batch and source at most (default {DEFAULT_MAX_SECONDS})",
    )
    parser.set_defaults(func=_extract)


def _extract(args, settings: Settings) -> int:
    sources = tuple(args.source or SOURCES)
    with Extractor(settings) as extractor:
        while True:
            results, errors = extractor.extract_all(sources, args.max_records, args.max_seconds)
            for result in results.values():
                print(result.summary_line(), flush=True)
            for source, exc in errors.items():
                # With --follow the source reconnects from its stored position next round.
                print(f"{source:<17} extract FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            if not args.follow:
                return 1 if errors else 0
            time.sleep(args.interval)
