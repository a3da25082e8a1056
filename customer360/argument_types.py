"""Values of command-line options that argparse checks (`type=`), so a value a command cannot
use stops `c360` at once with one line naming the option, not a traceback from deep in the
command. A port's rule is config.port_number: the C360_*_PORT variables share it."""

from __future__ import annotations

import argparse
import math


def _number(text: str, accepted, wanted: str) -> float:
    """`text` as a finite number that `accepted` takes (nan takes no comparison), or argparse's
    error saying what is `wanted`."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (accepted(value) and value < math.inf):
        raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number, at least 1, not {text!r}")
    return value


def positive_rate(text: str) -> float:
    # The stream's pacing turns the rate into a count of events: 0, nan and inf cannot be one.
    return _number(text, lambda value: value > 0, "a positive number of events/s")


def stream_rate(text: str) -> float:
    """`c360 up`'s stream: 0 (no stream) or a positive rate; -3, nan and inf were taken."""
    return _number(text, lambda value: value >= 0, "a number of events/s, 0 (no stream) or more")


def seconds(text: str) -> float:
    """A wait between rounds: 0 (none) or more; a negative one failed at the first sleep."""
    return _number(text, lambda value: value >= 0, "a number of seconds, 0 or more")


def positive_seconds(text: str) -> float:
    """A period: above 0 (0 printed a progress line every 50 ms)."""
    return _number(text, lambda value: value > 0, "a number of seconds above 0")
