"""A real JDBC client reads the serving copy while micro-batches keep landing and publishing.

The DuckDB JDBC driver comes from Maven Central (tests/jdbc/pom.xml, fetched once into
`.c360/duckdb-jdbc/`, like the Kafka jars); tests/jdbc/ServingLoop.java is compiled at test time
and queries `customer_360` with a new read-only connection per query. It must never fail (no
lock, no half-built file) and `max(as_of)` must never go back, while it does move forward.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from customer360.pipeline import MicroBatch
from customer360.serving import publish_serving_copy
from tests.extractor_helpers import mongo_db, produce, weblog

REPO = Path(__file__).resolve().parents[1]
JDBC_DIR = REPO / "tests" / "jdbc"
JARS_CACHE = REPO / ".c360" / "duckdb-jdbc"


def duckdb_jdbc_jar() -> Path:
    """The DuckDB JDBC jar, fetched with Maven once and cached."""
    if not (JARS_CACHE / ".complete").exists():
        mvn = shutil.which("mvn")
        assert mvn, (
            "Maven (mvn) is needed once to fetch the DuckDB JDBC driver: apt-get install maven"
        )
        partial = JARS_CACHE.with_name(JARS_CACHE.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(JDBC_DIR / "pom.xml"), "dependency:copy-dependencies",
             f"-DoutputDirectory={partial}", "-DincludeScope=runtime"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
        (partial / ".complete").write_text("ok\n")
        shutil.rmtree(JARS_CACHE, ignore_errors=True)
        partial.rename(JARS_CACHE)
    return next(JARS_CACHE.glob("duckdb_jdbc-*.jar"))


@pytest.fixture
def serving_loop(tmp_path):
    """Starts ServingLoop.java on a serving file; yields (start, stop -> output lines)."""
    for tool in ("javac", "java"):
        assert shutil.which(tool), f"{tool} (a JDK, apt-get install default-jdk) is needed"
    jar = duckdb_jdbc_jar()
    classes = tmp_path / "classes"
    subprocess.run(
        ["javac", "-d", str(classes), "-cp", str(jar), str(JDBC_DIR / "ServingLoop.java")],
        check=True,
    )
    stop_file = tmp_path / "stop"
    output = tmp_path / "jdbc.out"
    processes = []

    def start(database: Path) -> None:
        processes.append(
            subprocess.Popen(
                [
                    "java",
                    "-cp",
                    f"{classes}:{jar}",
                    "ServingLoop",
                    str(database),
                    str(stop_file),
                    "20",
                ],
                stdout=output.open("w"),
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )

    def stop() -> list[str]:
        stop_file.write_text("stop")
        for process in processes:
            process.wait(timeout=30)
        return output.read_text().splitlines()

    yield start, stop
    for process in processes:
        if process.poll() is None:
            process.kill()


def test_jdbc_client_reads_while_micro_batches_publish(isolated_settings, serving_loop):
    settings = isolated_settings
    start, stop = serving_loop
    db = mongo_db(settings)
    db.users.insert_many(
        [
            {"id": i, "first_name": f"C{i}", "email": f"c{i}@example.org", "dob": "1990-01-01"}
            for i in range(1, 6)
        ]
    )
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    publishes = []
    with MicroBatch(settings) as batch:
        assert batch.run().success
        publish_serving_copy(batch.con, settings)
        start(settings.serving_path.absolute())
        time.sleep(1.5)  # the JVM starts and reads the first copy
        for step in range(1, 6):
            # New web events (later each time) and a new order: every customer's data moves on.
            produce(
                settings,
                "weblogs",
                [json.dumps(weblog(i, date=(base + timedelta(minutes=step)).isoformat()))
                 for i in range(1, 6)],
            )  # fmt: skip
            db.online_orders.insert_one(
                {"user_id": step, "date": base, "items": [{"product_name": "Hat", "price": 5.0,
                                                           "quantity": 1}]}
            )  # fmt: skip
            result = batch.run()
            assert result.success, result.summary_lines()
            # MicroBatch.publish may have published already; then this finds nothing new.
            ours = publish_serving_copy(batch.con, settings)
            serving = getattr(result, "serving", None)
            publishes.append(ours if ours.published else serving)
            assert publishes[-1] is not None and publishes[-1].published
            time.sleep(0.3)
        time.sleep(0.5)
        lines = stop()

    errors = [line for line in lines if not line.startswith("ok ")]
    assert not errors, errors[:5]
    readings = [tuple(int(v) for v in line.split()[1:]) for line in lines]
    assert len(readings) >= 20, lines
    as_of = [r[0] for r in readings]
    assert all(a <= b for a, b in zip(as_of, as_of[1:], strict=False)), "as_of went back"
    # The client did see new data as it was published: first and last copies differ.
    assert as_of[-1] > as_of[0]
    assert readings[0][2] < readings[-1][2] == 5  # total orders grew to one per step
    assert {r[1] for r in readings} == {5}
    costs = ", ".join(f"{p.seconds * 1000:.0f}" for p in publishes)
    print(f"{len(readings)} JDBC queries, 0 errors; publish ms: {costs}")
