"""The readers' CPU priority: below the pipeline's, so the micro-batches keep their pace.

On a busy machine the serving processes (the profile API, the SQL endpoint) and the pipeline
compete for the same cores. Freshness is what users judge the product by, so the readers run
at a lower priority: when every core is busy, a micro-batch gets the CPU first and a reader's
request waits for a core instead; when the machine has room, readers get all they ask for.
"""

from __future__ import annotations

import argparse
import os

DEFAULT_NICE = "10"


def _nice_value(value: str) -> str:
    if value == "idle":
        return value
    if int(value) < 0:
        raise argparse.ArgumentTypeError("a reader cannot be raised above the pipeline")
    return str(int(value))


def add_nice_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nice",
        default=DEFAULT_NICE,
        type=_nice_value,
        help=f"CPU priority below the pipeline's: a nice increment (default {DEFAULT_NICE}; 0: "
        "the same priority) or `idle` (only CPU time nothing else wants)",
    )


def lower_priority(nice: str) -> None:
    """Lower this process's CPU priority (and its threads', which inherit it on creation)."""
    if nice == "idle":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif int(nice):
        os.nice(int(nice))
