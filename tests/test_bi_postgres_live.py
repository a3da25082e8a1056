"""BI clients read the SQL endpoint while micro-batches land and publish (real Kafka, MongoDB).

The endpoint runs as a user starts it (`c360 sql`, its own process, with a password). Meanwhile
an ODBC client (pyodbc -> unixODBC -> psqlODBC) and PostgreSQL's JDBC driver
(tests/jdbc/ServingLoop.java) query the marts in a loop, and the pipeline runs micro-batches,
each with new orders and web events for every customer. Asserted: no client error; within one
ODBC transaction two marts and `serving_publication` agree (never half a batch); `as_of` never
goes back and does move; tables are listed throughout; at the end both clients read exactly
the numbers of the warehouse's marts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pyodbc

from customer360.pipeline import MicroBatch
from customer360.services.processes import free_port
from customer360.serving import publish_serving_copy
from tests.bi_clients import compile_java_clients, jdbc_url, odbc_connection_string
from tests.extractor_helpers import mongo_db, produce, weblog

PASSWORD = "live-BI-pa55word"
ODBC_READING = """
select epoch_us(max(as_of)), count(*), coalesce(sum(total_orders), 0),
    (select coalesce(sum(number_of_orders), 0) from customer_purchase_stats),
    (select epoch_us(data_as_of) from serving_publication)
from customer_360
"""


class OdbcLoop(threading.Thread):
    """A BI tool on ODBC: one connection, a transaction per reading, tables listed each 5th."""

    def __init__(self, connection_string: str):
        super().__init__(daemon=True)
        self.connection_string = connection_string
        self.stop = threading.Event()
        self.readings: list[tuple] = []
        self.errors: list[str] = []
        self.listings: list[set[str]] = []

    def run(self) -> None:
        try:
            con = pyodbc.connect(self.connection_string, timeout=10)  # autocommit off: BEGIN
        except pyodbc.Error as exc:
            self.errors.append(repr(exc))
            return
        cur = con.cursor()
        while not self.stop.is_set():
            try:
                self.readings.append(tuple(cur.execute(ODBC_READING).fetchone()))
                if len(self.readings) % 5 == 0:
                    self.listings.append({t.table_name for t in cur.tables(schema="public")})
                con.commit()
            except pyodbc.Error as exc:
                self.errors.append(repr(exc))
            time.sleep(0.02)
        con.close()


def test_odbc_and_jdbc_clients_read_while_micro_batches_publish(isolated_settings, tmp_path):
    port = free_port()
    settings = isolated_settings.with_overrides(sql_port=port, sql_password=PASSWORD)
    classpath = compile_java_clients(tmp_path)
    db = mongo_db(settings)
    db.users.insert_many(
        [
            {"id": i, "first_name": f"C{i}", "email": f"c{i}@example.org", "dob": "1990-01-01"}
            for i in range(1, 6)
        ]
    )
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    server_log = tmp_path / "sql.log"
    with server_log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "customer360.cli", "sql"],
            env=settings.environment(), stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    stop_file = tmp_path / "stop"
    jdbc_output = tmp_path / "jdbc.out"
    java = None
    odbc = OdbcLoop(odbc_connection_string(port, settings.sql_user, PASSWORD))
    try:
        with MicroBatch(settings) as batch:
            assert batch.run().success
            publish_serving_copy(batch.con, settings)
            deadline = time.monotonic() + 30
            while "SQL endpoint" not in server_log.read_text():
                assert server.poll() is None and time.monotonic() < deadline, server_log.read_text()
                time.sleep(0.1)
            java = subprocess.Popen(
                ["java", "-cp", classpath, "ServingLoop", jdbc_url(port), str(stop_file), "20"],
                stdout=jdbc_output.open("w"), stderr=subprocess.STDOUT,
                env=dict(os.environ, C360_SQL_USER=settings.sql_user, C360_SQL_PASSWORD=PASSWORD),
            )  # fmt: skip
            odbc.start()
            deadline = time.monotonic() + 90
            while not (odbc.readings and jdbc_output.read_text().strip()):
                # Both clients read the first publication before the next ones come.
                assert time.monotonic() < deadline, (odbc.errors, jdbc_output.read_text())
                time.sleep(0.2)
            for step in range(1, 6):
                produce(
                    settings,
                    "weblogs",
                    [json.dumps(weblog(i, date=(base + timedelta(minutes=step)).isoformat()))
                     for i in range(1, 6)],
                )  # fmt: skip
                db.online_orders.insert_one(
                    {"user_id": step, "date": base,
                     "items": [{"product_name": "Hat", "price": 5.0, "quantity": 1}]}
                )  # fmt: skip
                result = batch.run()
                assert result.success, result.summary_lines()
                publish_serving_copy(batch.con, settings)
                time.sleep(0.5)
            time.sleep(1)
            stop_file.write_text("stop")
            odbc.stop.set()
            odbc.join(30)
            java.wait(timeout=30)
            marts = batch.con.execute(
                "select epoch_us(max(as_of)), count(*), sum(total_orders) from marts.customer_360"
            ).fetchone()
            mart_rows = batch.con.execute(
                "select customer_id, channel, number_of_orders, number_of_items_purchased,"
                " amount_spent from marts.customer_purchase_stats order by 1, 2"
            ).fetchall()
        # After the last publication: every purchase_stats row over ODBC equals the warehouse's.
        with pyodbc.connect(odbc.connection_string, timeout=10) as con:
            served_rows = [
                tuple(r)
                for r in con.cursor().execute(
                    "select customer_id, channel, number_of_orders, number_of_items_purchased,"
                    " amount_spent from customer_purchase_stats order by 1, 2"
                )
            ]
    finally:
        stop_file.write_text("stop")
        odbc.stop.set()
        if java is not None and java.poll() is None:
            java.kill()
        server.terminate()
        server.wait(timeout=30)

    assert not odbc.errors, odbc.errors[:3]
    jdbc_lines = jdbc_output.read_text().splitlines()
    jdbc_errors = [line for line in jdbc_lines if not line.startswith("ok ")]
    assert not jdbc_errors, jdbc_errors[:3]
    jdbc = [tuple(int(v) for v in line.split()[1:]) for line in jdbc_lines]
    assert len(jdbc) >= 20 and len(odbc.readings) >= 20, (len(jdbc), len(odbc.readings))
    for name, as_of in (("jdbc", [r[0] for r in jdbc]), ("odbc", [r[0] for r in odbc.readings])):
        assert all(a <= b for a, b in zip(as_of, as_of[1:], strict=False)), f"{name}: went back"
        assert as_of[-1] > as_of[0], f"{name} never saw a new publication"
    # One ODBC transaction reads one publication: customer_360's total orders equal
    # customer_purchase_stats' and its max(as_of) equals serving_publication's data_as_of.
    for as_of, _, orders, stats_orders, data_as_of in odbc.readings:
        assert orders == stats_orders and as_of == data_as_of
    assert all(listing >= {"customer_360", "customer_purchase_stats"} for listing in odbc.listings)
    assert odbc.listings
    # The last readings equal the warehouse's marts.
    assert jdbc[-1] == tuple(marts)
    assert odbc.readings[-1][:3] == tuple(marts)
    assert served_rows == mart_rows
    assert PASSWORD not in server_log.read_text()
    print(f"{len(jdbc)} JDBC and {len(odbc.readings)} ODBC readings, 0 errors")
