"""The readers (`c360 serve`, `c360 sql`) run below the pipeline's CPU priority."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from customer360.serving import cli as serve_cli
from customer360.serving.sql_endpoint import cli as sql_cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command", required=True)
    serve_cli.register(subparsers)
    sql_cli.register(subparsers)
    return parser


@pytest.mark.parametrize("command", ["serve", "sql"])
def test_both_readers_default_to_nice_10_and_take_idle(command):
    parser = _parser()
    assert parser.parse_args([command]).nice == "10"
    assert parser.parse_args([command, "--nice", "idle"]).nice == "idle"
    assert parser.parse_args([command, "--nice", "0"]).nice == "0"


@pytest.mark.parametrize("command", ["serve", "sql"])
def test_a_reader_cannot_be_raised_above_the_pipeline(command, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args([command, "--nice", "-5"])
    assert "cannot be raised above the pipeline" in capsys.readouterr().err


def _in_child(nice: str) -> list[str]:
    """lower_priority(nice) in a child process (it cannot be undone), its priority printed."""
    code = (
        "import os; from customer360.serving.priority import lower_priority;"
        f" lower_priority({nice!r});"
        " print(os.nice(0), os.sched_getscheduler(0) == os.SCHED_IDLE)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()


def test_lower_priority_adds_to_the_nice_value():
    assert _in_child("10") == [str(min(19, os.nice(0) + 10)), "False"]


def test_lower_priority_idle_gives_only_spare_cpu():
    assert _in_child("idle")[1] == "True"
