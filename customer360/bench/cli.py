"""`c360 bench`: freshness, throughput and incremental cost of the live path."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from customer360.bench.stats import CATCH_UP_BACKLOG_EVENTS, TARGET_P50_S, TARGET_P95_S
from customer360.config import Settings


def _rate(value: str) -> float | None:
    if value == "max":
        return None
    rate = float(value)
    if rate <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive, or `max`")
    return rate


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure freshness, throughput and incremental cost on the live path",
        description="Start Kafka and MongoDB on free ports under --out (or use the configured "
        "ones with --use-configured-services, in a database and topics of its own), seed a "
        "history, run the micro-batch pipeline (--mode), stream load at --rate while probes "
        "measure how long an event takes to be readable on the serving path, then time a "
        "catch-up, an incremental build and a full refresh. Writes result.json and "
        "freshness.png into --out and prints a table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=10_000, help="customers to seed")
    history = parser.add_mutually_exclusive_group()
    history.add_argument(
        "--history-events",
        type=int,
        default=200_000,
        help="about this many history events (sets the days)",
    )
    history.add_argument("--days", type=int, default=None, help="days of history instead")
    parser.add_argument("--rate", type=_rate, default=200.0,
                        help="events/s of load, or `max`: a ramp of steps of --duration s "
                        "until p95 freshness exceeds the target")  # fmt: skip
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of load (per step with --rate max)")  # fmt: skip
    parser.add_argument("--mode", choices=("dagster", "loop"), default="dagster",
                        help="dagster: as `c360 up` runs it (webserver + daemon; the sensor's "
                        "long-running microbatch_stream run); loop: a warm MicroBatch loop in "
                        "its own process, the same batches without Dagster")  # fmt: skip
    parser.add_argument(
        "--read-path",
        choices=("serving", "api"),
        default="serving",
        help="where probes are polled: the serving copy, or the profile API",
    )
    parser.add_argument("--backlog-events", type=int, default=CATCH_UP_BACKLOG_EVENTS,
                        help="events of the catch-up backlog (the real-time issue's, ~15 "
                        "micro-batches; it was 100,000, one or two)")  # fmt: skip
    parser.add_argument(
        "--target-p50",
        type=float,
        default=TARGET_P50_S,
        help="p50 freshness target (s): the report and --rate max judge by it",
    )
    parser.add_argument(
        "--target-p95",
        type=float,
        default=TARGET_P95_S,
        help="p95 freshness target (s): the report and --rate max judge by it",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder")
    parser.add_argument(
        "--use-configured-services",
        action="store_true",
        help="use the configured Kafka and MongoDB (C360_*) instead of own ones",
    )
    parser.set_defaults(func=run_bench_command)


def bench_settings(settings: Settings, out: Path, own_services: bool) -> Settings:
    """Settings of the benchmark: its own warehouse and home under `out`, and either services
    of its own on free ports or the configured ones with a database and topics of its own."""
    from customer360.services.processes import free_kafka_port, free_port

    out = out.resolve()
    common = dict(
        warehouse=out / "warehouse.duckdb",
        serving_db=out / "serving.duckdb",
        home=out / "home",
        kafka_jars=settings.kafka_jars_dir.resolve(),
    )
    if own_services:
        return settings.with_overrides(
            mongo_uri=f"mongodb://127.0.0.1:{free_port()}",
            kafka_bootstrap=f"127.0.0.1:{free_kafka_port()}",
            mongo_db="fashion",
            kafka_topic_prefix="",
            **common,
        )
    suffix = uuid.uuid4().hex[:8]
    return settings.with_overrides(
        mongo_db=f"bench_{suffix}", kafka_topic_prefix=f"bench{suffix}_", **common
    )


def clear_outputs(out: Path) -> None:
    """A fresh warehouse and serving copy for this run (the history is seeded anew)."""
    import shutil

    for name in ("warehouse.duckdb", "warehouse.duckdb.wal", "warehouse.duckdb.state.json",
                 "warehouse.duckdb.data_tests.json", "serving.duckdb", "batches.jsonl",
                 "result.json", "freshness.png"):  # fmt: skip
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "home", ignore_errors=True)
    shutil.rmtree(out / "logs", ignore_errors=True)


def run_bench_command(args: argparse.Namespace, settings: Settings) -> int:
    from customer360.bench.report import plot, table_lines, write_json
    from customer360.bench.run import BenchConfig
    from customer360.services import ServiceError, services_down, services_up

    args.out.mkdir(parents=True, exist_ok=True)
    clear_outputs(args.out)
    own = not args.use_configured_services
    bench = bench_settings(settings, args.out, own)
    config = BenchConfig(
        out=args.out.resolve(),
        customers=args.customers,
        history_events=None if args.days else args.history_events,
        days=args.days,
        rate=args.rate,
        duration_s=args.duration,
        mode=args.mode,
        read_path=args.read_path,
        backlog_events=args.backlog_events,
        target_p50_s=args.target_p50,
        target_p95_s=args.target_p95,
    )
    try:
        if own:
            print(f"services: starting Kafka and MongoDB under {bench.home} ...", flush=True)
            try:
                for state in services_up(bench):
                    print(state.line(), flush=True)
            except ServiceError as exc:
                print(f"c360 bench: the services could not start: {exc}", file=sys.stderr)
                return 1
        result = run_and_report(bench, config)
    finally:
        if own:  # also the one of the two that started when the other could not
            services_down(bench)
    if result is None:
        return 1
    print("\n".join(table_lines(result)))
    print(f"\nwrote {write_json(result, config.out)} and {plot(result, config.out)}")
    return 0


def run_and_report(settings: Settings, config) -> dict | None:
    from customer360.bench.run import Bench

    try:
        return Bench(settings, config, say=lambda line: print(line, flush=True)).run()
    except RuntimeError as exc:
        print(f"c360 bench: {exc}", file=sys.stderr)
        return None
