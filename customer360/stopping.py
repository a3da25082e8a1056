"""Stopping a long-running command the same way whatever asked: Ctrl-C, SIGTERM or SIGHUP.

Python turns Ctrl-C (SIGINT) into KeyboardInterrupt, so `finally` blocks stop what a command
started. SIGTERM (a service manager, `docker stop`, `kill`, a CI runner) and SIGHUP (a closed SSH
session) would kill the process without running them and orphan its children; here they raise
`StopRequested`, a KeyboardInterrupt, so every path that handles Ctrl-C handles them too.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def _raise_stop(signum, frame) -> None:
    raise StopRequested(signum)


def install_stop_handlers() -> None:
    """From now on SIGINT, SIGTERM and SIGHUP raise `StopRequested` in the main thread."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stop)


@contextlib.contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """While stopping what was started, a second signal does not cut the clean-up short (each
    step has its own time limit); it is acknowledged on stderr."""

    def acknowledge(signum, frame) -> None:
        print(f"{signal.Signals(signum).name}: already stopping, please wait", file=sys.stderr)

    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only ever delivered to, and handled in, the main thread
        return
    previous = {signum: signal.signal(signum, acknowledge) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@functools.cache  # registered once
def stop_signals_end_exit_quietly() -> None:
    """Once the interpreter exits, a stop signal ends the process at once, without a traceback.

    Libraries clean up at exit: pymongo joins its monitor threads (up to a second each). A stop
    signal meanwhile (Ctrl-C reaches every process of the terminal's group, and Dagster then
    interrupts the runs it stops) raised KeyboardInterrupt inside that clean-up and printed
    "Exception ignored in atexit callback" with a traceback to the Dagster logs, though the
    process was ending anyway. Call it once a client of such a library exists: atexit runs the
    last registered first, so this runs before the library's clean-up."""
    atexit.register(_default_stop_signals)


def _default_stop_signals() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
