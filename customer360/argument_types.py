"""Values of command-line options that argparse checks (`type=`), so a value a command cannot
use stops `c360` at once with one line naming the option, not a traceback from deep in the
command. A port's rule is config.port_number: the C360_*_PORT variables share it."""

from __future__ import annotations

import argparse
import math


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number, at least 1, not {text!r}")
    return value


def positive_rate(text: str) -> float:
    value = _number(text)
    # nan and inf too: the stream's pacing turns the rate into a count of events.
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of events/s, not {text!r}")
    return value


def seconds(text: str) -> float:
    """A wait between rounds: 0 (none) or more; a negative one failed at the first sleep."""
    value = _number(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, not {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A period: above 0 (0 printed a progress line every 50 ms)."""
    value = _number(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text!r}")
    return value
