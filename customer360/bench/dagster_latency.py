"""How long Dagster takes from a sensor tick to a finished micro-batch run (benchmark, not test).

    c360 services up   # or any reachable Kafka and MongoDB in C360_KAFKA_BOOTSTRAP / C360_MONGO_URI
    python -m customer360.bench.dagster_latency --rounds 3

Starts dagster-webserver and dagster-daemon as `c360 up` does (workspace.yaml, the committed
dagster.yaml) on a topic prefix, Mongo database, warehouse and C360_HOME of its own, lets the
sensor's first run catch up, then per round:
- an empty run: a micro-batch launched through GraphQL when nothing is new (run created -> end);
- 1 new event, then 1,000 new weblog events: the sensor's tick that requested the run -> the
  run's end, and its parts (tick -> run created -> run started -> run ended).
Prints each measure and the medians. Timings come from Dagster's own records (tick timestamp,
run creation / start / end times).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer

from customer360.config import Settings, load_settings
from customer360.kafka_topics import ensure_topics
from customer360.pipeline.dagster_home import start_dagster, stop_dagster
from customer360.services.processes import free_port

LOCATION = """repositoryLocationName: "dagster_project.definitions",
  repositoryName: "__repository__\""""
TICKS = (
    "{ sensorOrError(sensorSelector: {" + LOCATION + ', sensorName: "microbatch_sensor"}) '
    "{ ... on Sensor { sensorState { ticks(limit: 20) { timestamp status runIds } } } } }"
)
RUNS = """{ runsOrError(filter: {pipelineName: "microbatch"}) { ... on Runs { results {
  runId status creationTime startTime endTime } } } }"""
LAUNCH = (
    "mutation { launchRun(executionParams: {selector: {" + LOCATION + ', jobName: "microbatch"}}) '
    "{ __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"
)
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


class Dagster:
    """The webserver's GraphQL API, enough to time runs."""

    def __init__(self, url: str):
        self.url = url

    def query(self, query: str) -> dict:
        request = urllib.request.Request(
            self.url, json.dumps({"query": query}).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["data"]

    def runs(self) -> dict[str, dict]:
        return {r["runId"]: r for r in self.query(RUNS)["runsOrError"]["results"]}

    def wait_idle(self, at_least: int, timeout: float) -> dict[str, dict]:
        """The runs, once there are `at_least` and all of them finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                runs = self.runs()
            except OSError:  # the webserver is still starting
                runs = {}
            if len(runs) >= at_least and all(r["status"] in FINISHED for r in runs.values()):
                return runs
            time.sleep(0.2)
        raise TimeoutError(f"no {at_least} finished micro-batch runs after {timeout:.0f} s")

    def requesting_tick(self, run_id: str) -> dict:
        ticks = self.query(TICKS)["sensorOrError"]["sensorState"]["ticks"]
        return next(t for t in ticks if run_id in (t["runIds"] or []))


def produce_weblogs(settings: Settings, count: int) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5})
    now = datetime.now(UTC).isoformat()
    for i in range(count):
        record = {
            "event_id": str(uuid.uuid4()),
            "user_id": 1 + i % 100,
            "date": now,
            "session_id": "latency",
            "page": "home.html",
            "action": "view",
            "error_message": None,
        }
        producer.produce(settings.topic("weblogs"), json.dumps(record).encode())
        producer.poll(0)
    if producer.flush(30):
        raise RuntimeError("Kafka did not acknowledge the events in 30 s")


def measure(settings: Settings, rounds: int, port: int) -> dict[str, list[dict]]:
    ensure_topics(settings)
    produce_weblogs(settings, 100)  # something for the first run to land and build
    dagster = Dagster(f"http://127.0.0.1:{port}/graphql")
    processes = start_dagster(settings, port=port)
    results: dict[str, list[dict]] = {"empty": [], "1 event": [], "1000 events": []}
    try:
        count = len(dagster.wait_idle(1, timeout=600))
        print(f"first (catch-up) run done; {count} run(s)", flush=True)
        for _ in range(rounds):
            time.sleep(6)  # the sensor ticks while nothing is new (skips)
            launched = dagster.query(LAUNCH)["launchRun"]
            if launched["__typename"] != "LaunchRunSuccess":
                raise RuntimeError(f"launching a micro-batch failed: {launched}")
            count += 1
            run = dagster.wait_idle(count, timeout=300)[launched["run"]["runId"]]
            results["empty"].append(
                {
                    "status": run["status"],
                    "created_to_start": run["startTime"] - run["creationTime"],
                    "start_to_end": run["endTime"] - run["startTime"],
                    "total": run["endTime"] - run["creationTime"],
                }
            )
            print_measure("empty", results["empty"][-1])
            for events, name in ((1, "1 event"), (1000, "1000 events")):
                time.sleep(6)
                produced = time.time()
                produce_weblogs(settings, events)
                count += 1
                runs = dagster.wait_idle(count, timeout=300)
                run = max(runs.values(), key=lambda r: r["creationTime"])
                tick = dagster.requesting_tick(run["runId"])
                results[name].append(
                    {
                        "status": run["status"],
                        "produced_to_tick": tick["timestamp"] - produced,
                        "tick_to_created": run["creationTime"] - tick["timestamp"],
                        "created_to_start": run["startTime"] - run["creationTime"],
                        "start_to_end": run["endTime"] - run["startTime"],
                        "total": run["endTime"] - tick["timestamp"],
                    }
                )
                print_measure(name, results[name][-1])
    finally:
        stop_dagster(processes)
    return results


def print_measure(name: str, values: dict) -> None:
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in values.items() if k not in ("status", "total"))
    total = "tick -> run end" if "produced_to_tick" in values else "run created -> end"
    print(f"{name:<12} {total} {values['total']:.2f} s ({parts}) {values['status']}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="measures of each kind")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp)")
    args = parser.parse_args(argv)
    work = (args.dir or Path(tempfile.mkdtemp(prefix="c360-dagster-latency-"))).resolve()
    run_id = uuid.uuid4().hex[:8]
    settings = load_settings().with_overrides(
        home=work / "home",
        warehouse=work / "warehouse.duckdb",
        serving_db=None,
        kafka_topic_prefix=f"latency-{run_id}-",
        mongo_db=f"latency_{run_id}",
    )
    results = measure(settings, args.rounds, free_port())
    print("\nmedians:")
    for name, values in results.items():
        if values:
            total = statistics.median(v["total"] for v in values)
            failed = sum(1 for v in values if v["status"] != "SUCCESS")
            print(f"  {name:<12} {total:.2f} s over {len(values)} runs, {failed} not successful")
    (work / "dagster_latency.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {work / 'dagster_latency.json'}")


if __name__ == "__main__":
    main()
