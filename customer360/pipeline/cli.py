"""`c360 run-once` (one micro-batch, synchronously) and `c360 dagster` (webserver + daemon)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from customer360.config import Settings, port_number
from customer360.services.processes import ServiceError, log_tail, refuse_port_in_use


def register(subparsers: argparse._SubParsersAction) -> None:
    once = subparsers.add_parser(
        "run-once",
        help="run one micro-batch now: extract, build the dbt models it feeds, publish",
        description="One micro-batch in this process, the code path Dagster's micro-batch job "
        "runs: a bounded extract of every source, `dbt build` of the models downstream of the "
        "sources with new batches (in-process), then the serving copy (C360_SERVING_DB) and "
        "the positions published. It writes C360_WAREHOUSE: do not run it while `c360 up` is "
        "running, one writer at a time.",
    )
    once.add_argument("--json", action="store_true", help="print the result as JSON")
    once.set_defaults(func=_run_once)

    dagster = subparsers.add_parser(
        "dagster",
        help="start dagster-webserver and dagster-daemon on workspace.yaml until stopped",
        description="Start the Dagster UI and daemon with DAGSTER_HOME=$C360_HOME/dagster (the "
        "committed dagster.yaml copied there). The micro-batch sensor is on by default: it "
        "starts the long-running microbatch_stream run, the live pipeline. Ctrl-C, SIGTERM or "
        "SIGHUP terminates that run through Dagster (it ends CANCELED), then stops the webserver, "
        "the daemon and their code servers. Their logs: $C360_HOME/logs/dagster-*.log. Prints "
        "how the micro-batches go (from the stream process's heartbeat): when its process "
        "starts, when all that was landed is served, then a line a minute.",
    )
    dagster.add_argument(
        "--port", type=port_number, default=3000, help="web UI port (default 3000)"
    )
    dagster.add_argument("--host", default="127.0.0.1", help="web UI host (default 127.0.0.1)")
    dagster.set_defaults(func=_dagster)


def _run_once(args, settings: Settings) -> int:
    from customer360.pipeline.microbatch import MicroBatch

    with MicroBatch(settings) as batch:
        result = batch.run()
    if args.json:
        print(
            json.dumps(
                {
                    "success": result.success,
                    "extracts": {s: r.as_dict() for s, r in result.extracts.items()},
                    "extract_errors": result.extract_errors,
                    "dbt_sources": result.dbt_sources,
                    "models_built": result.models_built,
                    "dbt_failures": result.dbt.failures if result.dbt else [],
                    "seconds": {
                        "extract": result.extract_seconds,
                        "dbt": result.dbt_seconds,
                        "publish": result.publish_seconds,
                        "checkpoint": result.checkpoint_seconds,
                    },
                },
                indent=1,
            )
        )
    else:
        for line in result.summary_lines():
            print(line)
    return 0 if result.success else 1


def _dagster(args, settings: Settings) -> int:
    try:
        refuse_port_in_use(args.host, args.port, "Dagster's UI", "Stop it, or pass --port.")
    except ServiceError as exc:
        print(f"c360 dagster: {exc}", file=sys.stderr)
        return 1
    from customer360.pipeline.dagster_home import (
        cancel_runs_left_in_flight,
        dagster_home,
        open_instance,
        process_name,
        start_dagster,
        stop_dagster,
        stopping_marker,
        terminate_runs_in_flight,
    )
    from customer360.pipeline.heartbeat import read_beat
    from customer360.pipeline.progress import PipelineProgress
    from customer360.stopping import stop_signals_deferred

    logs = settings.home / "logs"
    try:
        processes = start_dagster(settings, port=args.port, host=args.host)
    except ServiceError as exc:
        print(f"c360 dagster: {exc}", file=sys.stderr)
        return 1
    instance = None
    try:
        # Opened now, so that stopping does not wait for Dagster's import and storage.
        instance = open_instance(settings)
        print(f"Dagster UI      http://{args.host}:{args.port}", flush=True)
        print(f"DAGSTER_HOME    {dagster_home(settings)}", flush=True)
        print(f"process logs    {logs}/dagster-*.log", flush=True)
        print("Ctrl-C (or SIGTERM) stops everything started here.", flush=True)
        progress = PipelineProgress(lambda: read_beat(settings))
        while all(p.poll() is None for p in processes):
            for line in progress.lines():
                print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
            time.sleep(0.5)
        for exited in (p for p in processes if p.poll() is not None):
            name = process_name(exited)
            # Why it stopped is at the end of its log; the user should not have to go and look.
            print(
                f"{name} exited with code {exited.returncode}; stopping. The end of "
                f"{logs / f'{name}.log'}:\n{log_tail(logs / f'{name}.log') or '(empty)'}",
                flush=True,
            )
        return 1
    finally:
        with stop_signals_deferred():
            print("stopping Dagster ...", flush=True)
            began = time.monotonic()

            def say(lines: list[str]) -> None:
                for line in lines:
                    print(f"{line} [{time.monotonic() - began:.1f} s]", flush=True)

            marker = stopping_marker(settings)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"{os.getpid()}\n")  # the sensor starts no new stream now
            if instance is not None:
                # Runs first, while the daemon's code server can still interrupt them cleanly.
                say(terminate_runs_in_flight(instance))
            say(stop_dagster(processes))
            if instance is not None:
                say(cancel_runs_left_in_flight(instance))
                instance.dispose()
