"""`c360 chaos`: the chaos soak (see customer360/chaos/soak.py)."""

from __future__ import annotations

import argparse
import sys

from customer360.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chaos",
        help="soak the live pipeline under a stream and injected faults, then prove the numbers",
        description="In topics, a Mongo database and a warehouse of the run's own, seeds "
        "customers, streams events, runs the pipeline (Dagster's webserver and daemon, or the "
        "plain micro-batch loop) and injects faults at random moments (SIGKILL of the process "
        "doing micro-batches, mid-batch: the Dagster stream run's worker or the loop; SIGKILL "
        "of the dagster-daemon; Kafka "
        "and MongoDB restarts, SIGKILL of the serving process, bursts of bad records, updates "
        "and deletes of customers with activity in flight). Then it drains and checks that raw "
        "holds every produced record exactly once, that the marts equal a full refresh and a "
        "plain-Python oracle over the sources, and that serving says the same. Restarts the "
        "services of C360_HOME: run it against a scratch C360_HOME, not a demo you care about.",
    )
    parser.add_argument("--duration", type=float, default=600, help="seconds of streaming")
    parser.add_argument("--faults-per-kind", type=int, default=5, help="faults of each kind")
    parser.add_argument("--rate", type=float, default=200, help="events per second")
    parser.add_argument("--customers", type=int, default=300, help="customers to seed first")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed (default: a new one per run, printed in the report)",
    )
    parser.add_argument("--mode", choices=("dagster", "loop"), default="dagster",
                        help="dagster: as `c360 up` runs it, the sensor's long-running "
                        "microbatch_stream run (its worker and the daemon are SIGKILLed); loop: "
                        "the plain micro-batch loop process")  # fmt: skip
    parser.add_argument("--no-serving", action="store_true", help="do not run the serving API")
    parser.set_defaults(func=_chaos)


def _chaos(args, settings: Settings) -> int:
    from customer360.chaos.soak import ChaosConfig, run_chaos
    from customer360.services import services_status

    # Checked first: the soak restarts the services as its faults, and found them missing or
    # not its own only at the first restart, minutes into the run.
    unusable = [
        f"{state.name} at {state.address} {why}"
        for state in services_status(settings)
        if (why := _why_unusable(state))
    ]
    if unusable:
        print(
            f"c360 chaos: it restarts the Kafka and MongoDB that `c360 services up` started for "
            f"C360_HOME={settings.home}, and {' and '.join(unusable)}: run `c360 services up` "
            "with this C360_HOME (and ports of its own) first",
            file=sys.stderr,
        )
        return 1

    config = ChaosConfig(
        duration_s=args.duration,
        faults_per_kind=args.faults_per_kind,
        rate=args.rate,
        customers=args.customers,
        seed=args.seed,
        serving=not args.no_serving,
        mode=args.mode,
    )
    report = run_chaos(settings, config, progress=lambda line: print(line, flush=True))
    for line in report.lines():
        print(line, flush=True)
    return 0 if report.ok else 1


def _why_unusable(state) -> str | None:
    if state.pid is None:
        return "answers but is not ours" if state.answering else "is stopped"
    return None if state.answering else "does not answer"
