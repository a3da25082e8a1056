"""`c360`: the command line of customer360. Each area registers its own subcommands."""

from __future__ import annotations

import argparse
import logging
import sys

from customer360 import demo
from customer360.audiences import cli as audiences_cli
from customer360.bench import cli as bench_cli
from customer360.chaos import cli as chaos_cli
from customer360.config import ConfigError, load_settings
from customer360.generator import cli as generator_cli
from customer360.pipeline import cli as pipeline_cli
from customer360.services import cli as services_cli
from customer360.serving import cli as serving_cli
from customer360.serving.sql_endpoint import cli as sql_endpoint_cli
from customer360.stopping import StopRequested, install_stop_handlers
from extractors import cli as extractors_cli
from extractors.warehouse import WarehouseLockedError

# Each area's `register(subparsers)`, in the order `c360 --help` lists them. Dagster and dbt are
# imported by the commands that run them, not here, so `c360 --help` stays quick.
COMMAND_MODULES = (
    services_cli,
    generator_cli,
    extractors_cli,
    pipeline_cli,
    serving_cli,
    sql_endpoint_cli,
    audiences_cli,
    chaos_cli,
    bench_cli,
    demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="c360",
        description="customer360: a real-time Customer 360 on MongoDB, Kafka, DuckDB, dbt and "
        "Dagster. Configuration comes from C360_* environment variables (see README).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Opening a Dagster instance (on stop, to cancel a run in flight) logs every migration step.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"c360: {error}", file=sys.stderr)
        return 2
    install_stop_handlers()
    try:
        return int(args.func(args, settings) or 0)
    except WarehouseLockedError as error:
        # Another writer holds the warehouse: the message names it and says what to stop.
        print(f"c360 {args.command}: {error}", file=sys.stderr)
        return 1
    except StopRequested as stop:
        return stop.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
