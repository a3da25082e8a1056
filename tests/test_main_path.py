"""The main job as users run it: `c360 up` in a fresh directory with the defaults.

Relative C360_HOME and warehouse (the defaults `./.c360` and `./data/warehouse.duckdb`), Kafka's
jars fetched into that home, a seeded history, and the live stream changing all five sources
(sign-ups, profile updates and deletions, online and in-store orders with corrections and
deletions, weblogs, emails with opens and clicks). Only the ports are free ones, so the test can
run beside a demo. Then the stop signal a user (Ctrl-C) sends, and `c360 up` again in the same
directory, as a user comes back to it, stopped as a service manager (SIGTERM) stops it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from customer360.generator.event_mix import STREAM_MIX
from customer360.services.processes import ManagedProcess, free_kafka_port, free_port
from dagster_project.stream import STREAM_JOB
from extractors import SOURCES
from tests.process_helpers import processes_with_home
from tests.profiles import assert_profile_matches_marts

C360 = Path(sys.executable).with_name("c360")
MICROBATCHES = 6
STOP_WITHIN_S = 30.0
# A profile shows values of the UTC day it is read (age, days since the last order): the API's
# profiles and the marts are read within this many seconds, so not in the last ones of a day.
SAME_DAY_WITHIN_S = 120.0
# After midnight UTC the stream builds the audiences once for the new day, with nothing landed.
NEW_DAY_BUILD_S = 30.0
SENSOR = "microbatch_sensor"

# `c360 up` starts Kafka and MongoDB itself.
pytestmark = [pytest.mark.services, pytest.mark.timeout(1200)]


class Up:
    """`c360 up` started as a user would, in one directory, and what it left there."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.home = cwd / ".c360"  # the default C360_HOME, relative to where `up` ran
        self.warehouse = cwd / "data" / "warehouse.duckdb"
        self.serve_port = free_port()
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith("C360_") and k != "DAGSTER_HOME"
        }
        self.env.update(
            C360_MONGO_URI=f"mongodb://127.0.0.1:{free_port()}",
            C360_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_kafka_port()}",
            C360_SERVE_PORT=str(self.serve_port),
            C360_SQL_PORT=str(free_port()),
        )
        self.ui_port = free_port()
        self.starts = 0
        self.process: subprocess.Popen | None = None
        self._instance: DagsterInstance | None = None

    def start(self) -> None:
        self.starts += 1
        self.output = self.cwd / f"c360-up-{self.starts}.out"
        command = [str(C360), "up", "--customers", "300", "--days", "30", "--rate", "50"]
        command += ["--ui-port", str(self.ui_port)]
        with open(self.output, "wb") as out:
            # A process group of its own, as a terminal's foreground job (see run_then_stop).
            self.process = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def say(self) -> str:
        """The end of what the latest start printed."""
        return self.output.read_text(errors="replace")[-4000:]

    def check_running(self) -> None:
        assert self.process.poll() is None, f"c360 up exited early:\n{self.say()}"

    def wait(self, what: str, condition, timeout: float, interval: float = 1.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            value = condition()
            if value:
                return value
            time.sleep(interval)
        pytest.fail(f"{what}: not within {timeout:.0f} s\n{self.say()}")

    def instance(self) -> DagsterInstance | None:
        # Opened once `up` has created the instance's storage (`dagster instance migrate`, then
        # the daemon's log): opening it while it is being created races to create its tables.
        if self._instance is None and (self.home / "logs" / "dagster-daemon.log").exists():
            self._instance = DagsterInstance.from_config(str(self.home / "dagster"))
        return self._instance

    def runs(self):
        instance = self.instance()
        return [] if instance is None else instance.get_run_records(RunsFilter(), ascending=True)

    def api(self, path: str) -> dict:
        url = f"http://127.0.0.1:{self.serve_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def our_processes(self) -> set[int]:
        """Live processes started for this `c360 up`, but not its services (Kafka, MongoDB):
        every child gets C360_HOME in its environment; the services are found by pid file."""
        services = {ManagedProcess(n, self.home / "run").pid() for n in ("kafka", "mongo")}
        return processes_with_home(self.home) - services

    def clean_up(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.our_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._instance is not None:
            self._instance.dispose()
        subprocess.run(
            [str(C360), "services", "down"], cwd=self.cwd, env=self.env, capture_output=True
        )


def no_run_failed(up: Up) -> None:
    """Fails on any Dagster run that failed, with its error."""
    for record in up.runs():
        run = record.dagster_run
        if run.status == DagsterRunStatus.FAILURE:
            errors = [
                entry.message or ""
                for entry in up.instance().all_logs(run.run_id)
                if entry.dagster_event is not None and entry.dagster_event.is_failure
            ]
            pytest.fail(f"run {run.run_id} of {run.job_name} failed: {errors}")


def stream_runs(up: Up) -> list:
    """The micro-batch stream's runs, all started by the sensor."""
    runs = [r.dagster_run for r in up.runs() if r.dagster_run.job_name == STREAM_JOB]
    for run in runs:
        assert run.tags.get("dagster/sensor_name") == SENSOR, run.tags
    return runs


def landed(up: Up, source: str) -> list:
    """The materializations of a raw table that landed records, oldest first."""
    instance = up.instance()
    if instance is None:
        return []
    events = instance.fetch_materializations(AssetKey(["raw", source]), 10_000).records
    found = [e for e in events if e.asset_materialization.metadata["records"].value > 0]
    return sorted(found, key=lambda e: e.timestamp)


def batches_that_landed(up: Up) -> int:
    """Micro-batches that landed something, with no run failed so far."""
    no_run_failed(up)
    return len({round(e.timestamp) for s in SOURCES for e in landed(up, s)})


def stream_kinds(log: Path) -> dict[str, int]:
    """The event kinds of the stream's last progress line: `...: weblog 410, email_sent 61`."""
    lines = [line for line in log.read_text().splitlines() if re.match(r"stream: \d+ s,", line)]
    assert lines, f"no progress line in {log}"
    return {
        kind: int(count) for kind, count in re.findall(r"(\w+) (\d+)", lines[-1].split("):", 1)[1])
    }


def wait_for_the_next_utc_day_if_this_one_ends_within(seconds: float) -> None:
    """Wait past midnight UTC (and the stream's build for the new day) if it comes within
    `seconds`: what is read next is compared with what is read after it, on one day."""
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    left = (midnight - now).total_seconds()
    if left < seconds:
        time.sleep(left + NEW_DAY_BUILD_S)


def run_then_stop(up: Up, stop_signal: int) -> None:
    """One `c360 up`: micro-batches land while the stream changes all five sources, the stream
    stops and the pipeline drains, then `up` gets `stop_signal` and must stop what it started."""
    started_at = datetime.now(UTC)
    up.start()
    before = batches_that_landed(up) if up.instance() is not None else 0
    # Micro-batches of the stream run the sensor started while all five sources change (after
    # the seeded history on a first start); no run fails.
    up.wait(
        f"{MICROBATCHES} micro-batches that landed records",
        lambda: batches_that_landed(up) >= before + MICROBATCHES,
        timeout=600,
    )
    # What is served is live: changes the stream made since this start (not a timing: those are
    # `c360 bench`'s).
    status = up.api("/api/status")
    assert datetime.fromisoformat(status["data_as_of"]) > started_at, status
    assert stream_runs(up)

    # The stream stops; the pipeline drains what it wrote, then lands nothing.
    assert ManagedProcess("stream", up.home / "run").stop()
    kinds = stream_kinds(up.home / "run" / "stream.log")
    # An email follow-up is an open or a click.
    for kind in [*(set(STREAM_MIX) - {"email_followup"}), "email_open", "email_click"]:
        assert kinds.get(kind, 0) > 0, f"the stream produced no {kind}: {kinds}"

    def drained():
        last = max(e.timestamp for s in SOURCES for e in landed(up, s))
        return time.time() - last > 10

    up.wait("the pipeline idle after the stream stopped", drained, timeout=180)
    no_run_failed(up)
    for source in SOURCES:
        # The history lands first; the stream changes every source after it.
        assert len(landed(up, source)) >= 2, f"{source}: nothing landed after the history"

    # The terminal said how the pipeline went, not only the Dagster UI (pipeline/progress.py).
    printed = up.output.read_text(errors="replace")
    assert re.search(r"pipeline: micro-batch process \d+ started", printed), up.say()
    assert "pipeline: all landed is served after" in printed, up.say()

    wait_for_the_next_utc_day_if_this_one_ends_within(SAME_DAY_WITHIN_S)
    found = up.api("/api/customers?limit=50")["items"]
    assert found
    profiles = [up.api(f"/api/customers/{c['customer_id']}") for c in found]

    # Stop as a user would: Ctrl-C, which the terminal sends to every process of its foreground
    # group (`c360 up` and what it started at once); or as a service manager: SIGTERM to `up`.
    started = time.monotonic()
    if stop_signal == signal.SIGINT:
        os.killpg(up.process.pid, stop_signal)
    else:
        up.process.send_signal(stop_signal)
    up.process.wait(STOP_WITHIN_S + 10)
    took = time.monotonic() - started
    said = up.say()
    assert took < STOP_WITHIN_S, f"stopping took {took:.0f} s\n{said}"
    assert up.process.returncode == 128 + stop_signal, said
    for what in ("stopped dagster-webserver", "stopped dagster-daemon", "stopped dashboard"):
        assert what in said, said
    # The stream's run was in flight: terminated through Dagster, it ends CANCELED.
    assert re.search(r"run \w+ \(microbatch_stream\) ended CANCELED", said), said
    deadline = time.monotonic() + 5
    while up.our_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not up.our_processes(), "still running after c360 up stopped"
    # Nothing was cut short: no stop signal inside a library's clean-up at exit (pymongo's
    # thread joins printed "Exception ignored in atexit callback" here at Ctrl-C).
    for log in (up.home / "logs").glob("dagster-*.log"):
        assert "Exception ignored" not in log.read_text(errors="replace"), log
    # The services stay up, as documented; `c360 services down` stops them.
    assert ManagedProcess("kafka", up.home / "run").pid() is not None
    assert ManagedProcess("mongo", up.home / "run").pid() is not None
    no_run_failed(up)
    assert stream_runs(up)[-1].status == DagsterRunStatus.CANCELED  # the newest

    # What the API served is what dbt built.
    with duckdb.connect(str(up.warehouse), read_only=True) as con:
        for profile in profiles:
            assert_profile_matches_marts(profile, con)


def test_c360_up_from_a_fresh_directory_stopped_then_up_again(tmp_path):
    """Up in a fresh directory, stopped with Ctrl-C (SIGINT); then up again in the same
    directory (the services still run; the warehouse, positions and Dagster's instance are
    kept; no second seed), stopped as a service manager stops it (SIGTERM)."""
    up = Up(tmp_path)
    try:
        run_then_stop(up, signal.SIGINT)
        run_then_stop(up, signal.SIGTERM)
        assert "already holds data; not seeding again" in up.output.read_text(), up.say()
    finally:
        up.clean_up()
