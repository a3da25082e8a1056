"""`c360 dagster` for real: webserver + daemon from workspace.yaml, the sensor-started stream.

Also: micro-batch runs launched from the UI queue behind the stream, which yields the
warehouse to them; the writers never overlap, and the sensor starts the stream again after.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from customer360.pipeline.dagster_home import start_dagster, stop_dagster
from customer360.services.processes import free_port
from dagster_project.stream import WRITER_TAG, WRITER_TAGS
from tests.extractor_helpers import produce, weblog

RUNS = """{ runsOrError { ... on Runs { results {
  runId pipelineName status creationTime startTime endTime tags { key value } } } } }"""
LAUNCH = """mutation { launchRun(executionParams: {selector: {
  repositoryLocationName: "dagster_project.definitions", repositoryName: "__repository__",
  jobName: "microbatch"}}) { __typename ... on PythonError { message } } }"""
MATERIALIZED = """{ assetOrError(assetKey: {path: ["raw", "weblogs"]}) { ... on Asset {
  assetMaterializations(limit: 10) { metadataEntries { label ... on IntMetadataEntry {
  intValue } } } } } }"""


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        url, json.dumps({"query": query}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def wait_for(url: str, what: str, condition, timeout: float):
    deadline = time.monotonic() + timeout
    runs: list[dict] = []
    while time.monotonic() < deadline:
        try:
            runs = graphql(url, RUNS)["runsOrError"]["results"]
        except OSError:
            runs = []  # the webserver is still starting
        if condition(runs):
            return runs
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s; runs: {runs}")


def landed_weblogs(url: str) -> int:
    asset = graphql(url, MATERIALIZED)["assetOrError"]
    return sum(
        entry["intValue"]
        for event in asset.get("assetMaterializations", [])
        for entry in event["metadataEntries"]
        if entry["label"] == "records"
    )


@pytest.mark.timeout(600)
def test_the_sensor_starts_the_stream_and_ui_runs_queue_behind_it(isolated_settings, tmp_path):
    settings = isolated_settings.with_overrides(home=tmp_path / "home")
    produce(settings, "weblogs", [json.dumps(weblog(1)) for _ in range(10)])
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    processes = start_dagster(settings, port=port)
    try:
        # The sensor is on by default: its first tick starts the stream, whose first batch
        # lands the 10 weblogs and reports them.
        wait_for(
            url,
            "a started stream",
            lambda runs: any(
                r["pipelineName"] == "microbatch_stream" and r["status"] == "STARTED" for r in runs
            ),
            timeout=300,
        )
        deadline = time.monotonic() + 120
        while landed_weblogs(url) < 10:
            assert time.monotonic() < deadline, "the stream reported no landed weblogs"
            time.sleep(0.5)

        # Two single micro-batches from the UI: they queue, the stream yields to them.
        for _ in range(2):
            assert graphql(url, LAUNCH)["launchRun"]["__typename"] == "LaunchRunSuccess"

        def done(runs):
            singles = [r for r in runs if r["pipelineName"] == "microbatch"]
            streams = [r for r in runs if r["pipelineName"] == "microbatch_stream"]
            return (
                len(singles) == 2
                and all(r["status"] == "SUCCESS" for r in singles)
                and len(streams) >= 2
                and streams[0]["status"] == "STARTED"  # newest first: started again
            )

        runs = wait_for(url, "two micro-batches, then the stream again", done, timeout=300)
        # Runs without the writer tag (the prune_history schedule) run beside the writers.
        writers = [
            r
            for r in runs
            if r["status"] != "STARTED"
            and {"key": WRITER_TAG, "value": WRITER_TAGS[WRITER_TAG]} in r["tags"]
        ]
        assert all(r["status"] == "SUCCESS" for r in writers), runs
        spans = sorted((r["startTime"], r["endTime"]) for r in writers)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, f"writers overlapped: {spans}"
    finally:
        stop_dagster(processes)
    assert all(p.returncode is not None for p in processes)
