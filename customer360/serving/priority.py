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


def nice_level(value: str) -> str:
    """--nice: `idle` or a nice increment, 0 or more (argparse names this function in its
    error for a value it cannot convert: "invalid _nice_value value" said nothing)."""
    if value == "idle":
        return value
    try:
        increment = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a nice increment (a whole number, 0 or more) or idle, not {value!r}"
        ) from None
    if increment < 0:
        raise argparse.ArgumentTypeError(
            f"must be 0 or more: a reader cannot be raised above the pipeline, not {value!r}"
        )
    return str(increment)


def add_nice_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nice",
        default=DEFAULT_NICE,
        type=nice_level,
        help=f"CPU priority below the pipeline's: a nice increment (default {DEFAULT_NICE}; 0: "
        "the same priority) or `idle` (only CPU time nothing else wants)",
    )


def lower_priority(nice: str) -> None:
    """Lower this process's CPU priority (and its threads', which inherit it on creation)."""
    if nice == "idle":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif int(nice):
        os.nice(int(nice))
