"""`c360 dagster` for real: webserver + daemon from workspace.yaml, a sensor-driven micro-batch.

Also: two micro-batches launched together run one after the other, never at the same time.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from customer360.pipeline.dagster_home import start_dagster, stop_dagster
from customer360.services.processes import free_port
from tests.extractor_helpers import produce, weblog

RUNS = """{ runsOrError(filter: {pipelineName: "microbatch"}) { ... on Runs { results {
  runId status creationTime startTime endTime } } } }"""
LAUNCH = """mutation { launchRun(executionParams: {selector: {
  repositoryLocationName: "dagster_project.definitions", repositoryName: "__repository__",
  jobName: "microbatch"}}) { __typename ... on PythonError { message } } }"""


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        url, json.dumps({"query": query}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def wait_for_runs(url: str, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    runs: list[dict] = []
    while time.monotonic() < deadline:
        try:
            runs = graphql(url, RUNS)["runsOrError"]["results"]
        except OSError:
            runs = []  # the webserver is still starting
        finished = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        if len(finished) >= count and len(finished) == len(runs):
            return runs
        time.sleep(0.5)
    raise AssertionError(f"expected {count} finished micro-batch runs, got {runs}")


@pytest.mark.timeout(600)
def test_webserver_and_daemon_run_sensor_driven_microbatches_one_at_a_time(
    isolated_settings, tmp_path
):
    settings = isolated_settings.with_overrides(home=tmp_path / "home")
    produce(settings, "weblogs", [json.dumps(weblog(1)) for _ in range(10)])
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    processes = start_dagster(settings, port=port)
    try:
        # The sensor is on by default: the first tick finds data and requests a micro-batch.
        runs = wait_for_runs(url, 1, timeout=300)
        assert [r["status"] for r in runs] == ["SUCCESS"], runs

        for _ in range(2):
            assert graphql(url, LAUNCH)["launchRun"]["__typename"] == "LaunchRunSuccess"
        runs = wait_for_runs(url, 3, timeout=120)
        assert all(r["status"] == "SUCCESS" for r in runs), runs
        spans = sorted((r["startTime"], r["endTime"]) for r in runs)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, f"micro-batches overlapped: {spans}"
    finally:
        stop_dagster(processes)
    assert all(p.returncode is not None for p in processes)
    logs = (settings.home / "logs" / "dagster-daemon.log").read_text()
    assert "microbatch_sensor" in logs or "RUN_SUCCESS" in logs
