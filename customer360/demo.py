"""`c360 up`: the demo in one command — services, data, a live stream, and the pipeline."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from pymongo import MongoClient

from customer360.argument_types import positive_int, stream_rate
from customer360.config import Settings, port_number
from customer360.services import ServiceError, services_status, services_up
from customer360.services.launcher import ServiceState
from customer360.services.processes import ManagedProcess, refuse_port_in_use
from customer360.stopping import stop_signals_deferred

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "up",
        help="the demo: services up, seed if empty, keep a stream flowing, run the pipeline",
        description="Start the local Kafka and MongoDB (`c360 services up`), seed them with "
        "--customers customers if the users collection is empty, start `c360 stream` in the "
        "background at --rate events/s, start the dashboard and profile API (`c360 serve`), "
        "the SQL endpoint for BI tools (`c360 sql`) and the audience publisher (`c360 "
        "audiences publish`), then run the pipeline and its UI (Dagster), saying how its "
        "micro-batches go (when all that was landed is served, then a line a minute). Their logs: "
        "$C360_HOME/run/{stream,serve,sql,audiences}.log and $C360_HOME/logs/dagster-*.log. "
        "Ctrl-C, SIGTERM or SIGHUP stops what it started (the stream, the dashboard, the SQL "
        "endpoint, the audience publisher, Dagster's pipeline run, webserver, daemon and code "
        "servers) and says what it stopped; the services stay up for "
        "the next `c360 up`, `c360 services down` stops them. Relative paths in C360_HOME and "
        "C360_WAREHOUSE are taken against the current directory.",
    )
    parser.add_argument(
        "--customers",
        type=positive_int,
        default=10_000,
        help="customers to seed when the database is empty (default 10000)",
    )
    parser.add_argument(
        "--days", type=positive_int, default=365, help="days of history to seed (default 365)"
    )
    parser.add_argument(
        "--rate",
        type=stream_rate,
        default=20.0,
        help="events per second of the live stream (default 20; 0: no stream)",
    )
    parser.add_argument(
        "--ui-port", type=port_number, default=3000, help="port of the Dagster UI (default 3000)"
    )
    parser.add_argument(
        "--external-services",
        action="store_true",
        help="use the Kafka and MongoDB already answering at C360_KAFKA_BOOTSTRAP and "
        "C360_MONGO_URI (docker compose, a cluster) instead of starting the local ones",
    )
    parser.set_defaults(func=run_up)


def refuse_ports_in_use(settings: Settings, ui_port: int) -> None:
    """Before anything starts: the ports of the dashboard, the SQL endpoint and Dagster's UI are
    free, or held by the server a previous `c360 up` left running (reused)."""
    for name, what, host, port, advice in (
        ("serve", "the dashboard", settings.serve_host, settings.serve_port, "C360_SERVE_PORT"),
        ("sql", "the SQL endpoint", settings.sql_host, settings.sql_port, "C360_SQL_PORT"),
        (None, "Dagster's UI", "127.0.0.1", ui_port, "--ui-port"),
    ):
        if name is None or ManagedProcess(name, settings.home / "run").pid() is None:
            refuse_port_in_use(host, port, what, f"Stop it, or set {advice} to a free port.")


def run_up(args, settings: Settings) -> int:
    try:
        refuse_ports_in_use(settings, args.ui_port)
    except ServiceError as exc:
        print(f"c360 up: {exc}", file=sys.stderr)
        return 1
    try:
        # The local launcher refuses ports another process holds, so it cannot be asked to
        # start what docker compose (or anyone) already runs there.
        states = external_services(settings) if args.external_services else services_up(settings)
    except ServiceError as exc:
        print(f"c360 up: the services could not start: {exc}", file=sys.stderr)
        return 1
    for state in states:
        print(state.line(), flush=True)
    with contextlib.ExitStack() as started:
        # Whatever ends this block (Ctrl-C, SIGTERM, an error), what it started is stopped, in
        # the reverse order; the services stay up (`c360 services down`).
        started.callback(_stop_background, settings)
        _seed_if_empty(settings, args.customers, args.days)
        child_env = settings.environment()
        stream = ManagedProcess("stream", settings.home / "run")
        if args.rate > 0 and stream.pid() is None:
            stream.start(
                [sys.executable, "-m", "customer360.cli", "stream", "--rate", str(args.rate)],
                env=child_env,
            )
            print(f"stream: {args.rate:g} events/s in the background (log {stream.log_file})")
        serve = ManagedProcess("serve", settings.home / "run")
        if serve.pid() is None:
            serve.start([sys.executable, "-m", "customer360.cli", "serve"], env=child_env)
        print(
            f"dashboard: http://{settings.serve_host}:{settings.serve_port}/ (API under /api, "
            f"log {serve.log_file})",
            flush=True,
        )
        sql = ManagedProcess("sql", settings.home / "run")
        if sql.pid() is None:
            sql.start([sys.executable, "-m", "customer360.cli", "sql"], env=child_env)
        print(
            f"SQL endpoint for BI tools (PostgreSQL protocol): host {settings.sql_host} port "
            f"{settings.sql_port} database customer360 user {settings.sql_user} (log "
            f"{sql.log_file})",
            flush=True,
        )
        audiences = ManagedProcess("audiences", settings.home / "run")
        if audiences.pid() is None:
            audiences.start(
                [sys.executable, "-m", "customer360.cli", "audiences", "publish"], env=child_env
            )
        print(
            f"audience changes: published exactly once to Kafka topic "
            f"{settings.topic('audience_changes')} (log {audiences.log_file})",
            flush=True,
        )
        from customer360.pipeline.cli import _dagster

        # Dagster's webserver and daemon with the micro-batch sensor on, until stopped.
        return _dagster(argparse.Namespace(port=args.ui_port, host="127.0.0.1"), settings)


def external_services(settings: Settings) -> list[ServiceState]:
    states = services_status(settings)
    silent = [f"{state.name} at {state.address}" for state in states if not state.answering]
    if silent:
        raise ServiceError(
            f"{' and '.join(silent)} did not answer (--external-services): start them "
            "(docker compose up -d), or leave the option out to start the local ones"
        )
    return states


def _stop_background(settings: Settings) -> None:
    with stop_signals_deferred():
        for name, what in (
            ("stream", "stream"),
            ("serve", "dashboard"),
            ("sql", "SQL endpoint"),
            ("audiences", "audience publisher"),
        ):
            process = ManagedProcess(name, settings.home / "run")
            pid = process.pid()
            if process.stop():
                print(f"stopped {what} (pid {pid})", flush=True)
        print("c360 up: stopped; the services still run (`c360 services down` stops them)")


def _seed_if_empty(settings: Settings, customers: int, days: int) -> None:
    from customer360.generator.history import print_progress, seed

    with MongoClient(settings.mongo_uri) as client:
        if client[settings.mongo_db].users.estimated_document_count() > 0:
            print(f"seed: {settings.mongo_db}.users already holds data; not seeding again")
            return
    print(f"seed: {customers} customers, {days} days of history ...", flush=True)
    summary = seed(settings, customers=customers, days=days, progress=print_progress)
    print(f"seed: {summary}", flush=True)
