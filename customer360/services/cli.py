"""`c360 services up | down | status | logs`."""

from __future__ import annotations

import argparse
import sys

from customer360.config import Settings
from customer360.services.launcher import (
    ServiceError,
    services_down,
    services_status,
    services_up,
)
from customer360.services.processes import ManagedProcess


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "services",
        help="start, stop or inspect the local Kafka and MongoDB",
        description="Local services: Apache Kafka (single KRaft node, jars fetched once from "
        "Maven Central into $C360_HOME/kafka/jars) at C360_KAFKA_BOOTSTRAP, and a "
        "MongoDB-compatible SecantusDB server at C360_MONGO_URI. Data, logs and pid files live "
        "under C360_HOME.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start both (idempotent) and wait until they answer")
    up.set_defaults(func=_up)
    down = actions.add_parser("down", help="stop the processes that `up` started")
    down.set_defaults(func=_down)
    status = actions.add_parser("status", help="say what runs where")
    status.set_defaults(func=_status)
    logs = actions.add_parser(
        "logs", help="print the end of a service's log ($C360_HOME/run/<service>.log)"
    )
    logs.add_argument("service", choices=["kafka", "mongo"])
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines to print (default 50)")
    logs.set_defaults(func=_logs)


def _up(args, settings: Settings) -> int:
    try:
        states = services_up(settings)
    except ServiceError as exc:
        print(f"c360 services up failed: {exc}")
        return 1
    for state in states:
        print(state.line())
    print(f"C360_MONGO_URI={states[0].address}")
    print(f"C360_KAFKA_BOOTSTRAP={states[1].address}")
    return 0


def _down(args, settings: Settings) -> int:
    stopped = services_down(settings)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(args, settings: Settings) -> int:
    states = services_status(settings)
    for state in states:
        print(state.line())
    return 0 if all(s.answering for s in states) else 3


def _logs(args, settings: Settings) -> int:
    process = ManagedProcess(args.service, settings.home / "run")
    if not process.log_file.exists():
        print(
            f"c360 services logs: no {args.service} log at {process.log_file}: `c360 services up` "
            "with this C360_HOME writes it",
            file=sys.stderr,
        )
        return 1
    print(process.log_tail(args.lines))
    return 0
