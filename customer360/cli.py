"""`c360`: the command line of customer360. Each area registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from customer360.config import load_settings
from customer360.stopping import StopRequested, install_stop_handlers

# Modules with a `register(subparsers)`; imported lazily by name so that `c360 --help` does not
# pay for importing Dagster or dbt.
COMMAND_MODULES = (
    "customer360.services.cli",
    "customer360.generator.cli",
    "extractors.cli",
    "customer360.pipeline.cli",
    "customer360.serving.cli",
    "customer360.chaos.cli",
    "customer360.bench.cli",
    "customer360.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="c360",
        description="customer360: a real-time Customer 360 on MongoDB, Kafka, DuckDB, dbt and "
        "Dagster. Configuration comes from C360_* environment variables (see README).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only tolerate the command module itself being absent, never a missing dependency.
            if not module_name.startswith(exc.name or "\0"):
                raise
            continue
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
    install_stop_handlers()
    try:
        return int(args.func(args, load_settings()) or 0)
    except StopRequested as stop:
        return stop.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
