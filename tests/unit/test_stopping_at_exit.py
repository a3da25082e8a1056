"""A stop signal while the interpreter exits ends the process quietly (customer360/stopping.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

# A clean-up registered before stop_signals_end_exit_quietly (as pymongo's is, at its import)
# runs after it; this one is interrupted by a stop signal, as pymongo's was at Ctrl-C.
CHILD = textwrap.dedent(
    """
    import atexit, os, signal, sys, time
    from customer360.stopping import install_stop_handlers, stop_signals_end_exit_quietly

    def library_clean_up():
        os.kill(os.getpid(), signal.{signal})
        time.sleep(2)  # a thread join: the signal arrives meanwhile
        print("clean-up ended", flush=True)

    install_stop_handlers()
    atexit.register(library_clean_up)
    if sys.argv[1] == "quiet":
        stop_signals_end_exit_quietly()
    print("exiting", flush=True)
    """
)


def run_child(stop_signal: signal.Signals, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD.format(signal=stop_signal.name), mode],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_stop_signal_during_exit_clean_up_ends_the_process_without_a_traceback():
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        done = run_child(stop_signal, "quiet")
        assert done.stdout == "exiting\n", done
        assert done.stderr == "", done
        assert done.returncode == -stop_signal, done  # ended by the signal, at once


def test_without_it_the_clean_up_prints_a_traceback():
    """What the Dagster logs held at Ctrl-C before (the check above is not vacuous)."""
    done = run_child(signal.SIGINT, "loud")
    assert "Exception ignored in atexit callback" in done.stderr, done
    assert "Traceback" in done.stderr, done
