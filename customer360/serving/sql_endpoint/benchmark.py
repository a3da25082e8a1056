"""SQL endpoint benchmarks (not tests): BI load against live micro-batches, and the two designs.

    python -m customer360.serving.sql_endpoint.benchmark load [--customers 2000] [--phase 60]
    python -m customer360.serving.sql_endpoint.benchmark compare [--customers 100000]

`load` starts Kafka and MongoDB on free ports in a scratch home, seeds a history, keeps a stream
of events flowing (`c360 stream`), catches the pipeline up, then runs warm micro-batches back to
back (`MicroBatch`, as the stream run does, without data tests) through alternating phases:
idle, then `--connections` BI connections over the SQL endpoint (`c360 sql`, its own process)
each running the dashboard's queries for a random customer every `--think` seconds, alongside
the profile API (`c360 serve`) at `--api-rate` requests/s. It reports each phase kind's
micro-batch median and p95, the slowdown under load, the clients' latencies and errors, and the
load average. Clients run in a process of their own, so they compete for the cores as BI users
would, not for this process's GIL.

`compare` measures the costs the issue asks to weigh: what the endpoint pays when a new copy is
published (opening it and building its catalogue) against what a real PostgreSQL fed from the
marts pays (a throwaway cluster from Debian's postgresql: the first full load of the serving
copy by COPY, then an upsert of the customers one micro-batch touched).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from customer360.config import Settings, load_settings
from customer360.stopping import StopRequested, install_stop_handlers

DASHBOARD_QUERIES = (
    "select * from customer_360 where customer_id = %s",
    "select product_name, purchases, last_purchased_at from customer_popular_items"
    " where customer_id = %s order by purchases desc, last_purchased_at desc limit 10",
    "select error_message, page, last_at, occurrences from customer_recent_errors"
    " where customer_id = %s order by last_at desc, occurrences desc limit 10",
    "select event, last_at from customer_activity where customer_id = %s order by last_at desc",
    "select channel, number_of_orders, amount_spent from customer_purchase_stats"
    " where customer_id = %s",
)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# -- the clients (a process of their own) ------------------------------------------------------


def run_clients(args: argparse.Namespace) -> int:
    import psycopg

    # The clients stand for BI tools on other machines: they take what CPU is left over.
    os.nice(19)
    deadline = time.monotonic() + args.duration
    lock = threading.Lock()
    stats = {"bi_queries": 0, "bi_errors": [], "bi_latency_ms": [], "api_requests": 0,
             "api_errors": [], "api_latency_ms": []}  # fmt: skip

    def bi_connection(n: int) -> None:
        rng = random.Random(n)
        try:
            con = psycopg.connect(args.conninfo, autocommit=True)
        except psycopg.Error as exc:
            with lock:
                stats["bi_errors"].append(repr(exc))
            return
        with con:
            while time.monotonic() < deadline:
                customer = rng.randint(1, args.customers)
                started = time.perf_counter()
                try:
                    for sql in DASHBOARD_QUERIES:
                        con.execute(sql, (customer,)).fetchall()
                except psycopg.Error as exc:
                    with lock:
                        stats["bi_errors"].append(repr(exc))
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    stats["bi_queries"] += len(DASHBOARD_QUERIES)
                    stats["bi_latency_ms"].append(elapsed)
                time.sleep(max(0.0, args.think - elapsed / 1000))

    def api_client(n: int, rate: float) -> None:
        rng = random.Random(1000 + n)
        host, port = args.api.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            next_at += 1 / rate
            customer = rng.randint(1, args.customers)
            started = time.perf_counter()
            try:
                conn.request("GET", f"/api/customers/{customer}")
                response = conn.getresponse()
                response.read()
                ok = response.status in (200, 404)
            except (OSError, http.client.HTTPException) as exc:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                status = repr(exc)
            else:
                status = str(response.status)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                stats["api_requests"] += 1
                stats["api_latency_ms"].append(elapsed)
                if not ok:
                    stats["api_errors"].append(status)
            time.sleep(max(0.0, next_at - time.monotonic()))

    threads = [threading.Thread(target=bi_connection, args=(n,)) for n in range(args.connections)]
    api_threads = 20 if args.api_rate > 0 else 0
    threads += [
        threading.Thread(target=api_client, args=(n, args.api_rate / api_threads))
        for n in range(api_threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = {
        "bi_connections": args.connections,
        "bi_queries": stats["bi_queries"],
        "bi_queries_per_s": stats["bi_queries"] / args.duration,
        "bi_errors": len(stats["bi_errors"]),
        "bi_error_samples": stats["bi_errors"][:3],
        "bi_dashboard_p50_ms": _percentile(stats["bi_latency_ms"], 0.5),
        "bi_dashboard_p99_ms": _percentile(stats["bi_latency_ms"], 0.99),
        "api_requests": stats["api_requests"],
        "api_requests_per_s": stats["api_requests"] / args.duration,
        "api_errors": len(stats["api_errors"]),
        "api_error_samples": stats["api_errors"][:3],
        "api_p50_ms": _percentile(stats["api_latency_ms"], 0.5),
        "api_p99_ms": _percentile(stats["api_latency_ms"], 0.99),
    }
    Path(args.out).write_text(json.dumps(summary))
    return 0


# -- load: micro-batches with and without BI clients -------------------------------------------


def _wait_for(what: str, check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.2)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _answers(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def run_load(args: argparse.Namespace) -> int:
    from customer360.generator.history import seed
    from customer360.kafka_topics import ensure_topics
    from customer360.pipeline import MicroBatch
    from customer360.services import services_down, services_up
    from customer360.services.processes import free_kafka_port, free_port

    home = Path(args.dir or tempfile.mkdtemp(prefix="c360-sql-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    user = load_settings()
    settings = Settings(
        mongo_uri=f"mongodb://127.0.0.1:{free_port()}",
        kafka_bootstrap=f"127.0.0.1:{free_kafka_port()}",
        warehouse=home / "warehouse.duckdb",
        home=home,
        kafka_jars=user.kafka_jars_dir,
        serve_port=free_port(),
        sql_port=free_port(),
        sql_password="bench-" + os.urandom(6).hex(),
    )
    print(f"home {home}; load average at start {_load_average()}", flush=True)
    children: list[subprocess.Popen] = []
    try:
        for state in services_up(settings):
            print(state.line(), flush=True)
        ensure_topics(settings)
        print(f"seed: {seed(settings, customers=args.customers, days=args.days)}", flush=True)
        env = settings.environment()
        logs = home / "logs"
        logs.mkdir(exist_ok=True)

        def start(name: str, argv: list[str]) -> subprocess.Popen:
            with (logs / f"{name}.log").open("w") as log:
                process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
            children.append(process)
            return process

        cli = [sys.executable, "-m", "customer360.cli"]
        start("stream", cli + ["stream", "--rate", str(args.rate)])
        with MicroBatch(settings, data_tests_every_s=None) as batch:
            started = time.monotonic()
            while True:  # the history, then the stream's backlog
                result = batch.run()
                result.raise_on_failure()
                if result.remaining_lag == 0 and result.records < args.rate * 5:
                    break
            print(f"caught up in {time.monotonic() - started:.0f} s", flush=True)
            start("sql", cli + ["sql", "--nice", args.sql_nice])
            start("serve", cli + ["serve", "--nice", args.api_nice])
            _wait_for("c360 sql", lambda: _answers("127.0.0.1", settings.sql_port))
            _wait_for("c360 serve", lambda: _answers("127.0.0.1", settings.serve_port))
            sql_pid = children[-2].pid
            phases = []
            # idle: no reader; api: the profile API alone; bi: the BI connections alone;
            # both: what the issue asks (BI connections alongside the API).
            kinds = ["idle", "api", "bi", "both"]
            for number, kind in enumerate(kinds * args.rounds):
                clients = None
                out = home / f"clients-{number}.json"
                if kind != "idle":
                    conninfo = (
                        f"host=127.0.0.1 port={settings.sql_port} dbname=customer360 "
                        f"user={settings.sql_user} password={settings.sql_password}"
                    )
                    connections = 0 if kind == "api" else args.connections
                    api_rate = 0 if kind == "bi" else args.api_rate
                    clients = subprocess.Popen(
                        [sys.executable, "-m", "customer360.serving.sql_endpoint.benchmark",
                         "_clients", "--conninfo", conninfo,
                         "--api", f"127.0.0.1:{settings.serve_port}",
                         "--customers", str(args.customers), "--connections",
                         str(connections), "--think", str(args.think), "--api-rate",
                         str(api_rate), "--duration", str(args.phase), "--out", str(out)],
                        env=env,
                    )  # fmt: skip
                    time.sleep(2)  # connections open before the phase's batches count
                load_start = _load_average()
                sql_cpu_start, cpu_start = _cpu_seconds(sql_pid), time.process_time()
                batches, splits, modes = [], [], {}
                phase_start = time.monotonic()
                phase_end = phase_start + args.phase - (2 if clients else 0)
                while time.monotonic() < phase_end:
                    result = batch.run()
                    result.raise_on_failure()
                    batches.append((result.total_seconds, result.records))
                    splits.append(
                        (result.extract_seconds, result.dbt_seconds, result.publish_seconds,
                         result.checkpoint_seconds)
                    )  # fmt: skip
                    if result.serving is not None and result.serving.published:
                        modes[result.serving.mode] = modes.get(result.serving.mode, 0) + 1
                phase_seconds = time.monotonic() - phase_start
                pipeline_cpu = time.process_time() - cpu_start
                sql_cpu = _cpu_seconds(sql_pid) - sql_cpu_start
                if clients is not None:
                    clients.wait(timeout=args.phase + 120)
                phase = {
                    "kind": kind,
                    "batches": len(batches),
                    "median_s": statistics.median(s for s, _ in batches),
                    "p95_s": _percentile([s for s, _ in batches], 0.95),
                    "records_per_batch": statistics.median(r for _, r in batches),
                    # where a batch's time went, and how the serving copy was published (a
                    # slot a reader holds is not written in place: see serving/publish.py)
                    "median_split_s": {
                        part: round(statistics.median(s[i] for s in splits), 3)
                        for i, part in enumerate(("extract", "dbt", "publish", "checkpoint"))
                    },
                    "publications": modes,
                    "pipeline_cpu_s_per_1000_records": pipeline_cpu
                    / max(1, sum(r for _, r in batches))
                    * 1000,
                    "sql_endpoint_cpu_share": sql_cpu / phase_seconds,
                    "load_average": f"{load_start} -> {_load_average()}",
                }
                if clients is not None:
                    phase["clients"] = json.loads(out.read_text())
                    if phase["clients"]["bi_queries"]:
                        phase["sql_endpoint_cpu_ms_per_query"] = (
                            sql_cpu * 1000 / phase["clients"]["bi_queries"]
                        )
                phases.append(phase)
                print(json.dumps(phase), flush=True)
        medians = {
            kind: statistics.median(p["median_s"] for p in phases if p["kind"] == kind)
            for kind in kinds
        }
        idle = medians["idle"]
        print(
            "micro-batch median: "
            + ", ".join(f"{k} {v * 1000:.0f} ms (x{v / idle:.2f})" for k, v in medians.items())
            + f"; {args.connections} BI connections, API at {args.api_rate:g} req/s; "
            f"load average now {_load_average()}",
            flush=True,
        )
    finally:
        for process in children:
            process.terminate()
        for process in children:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        services_down(settings)
    return 0


# -- compare: the endpoint's cost per publication vs a real PostgreSQL's -----------------------


def run_compare(args: argparse.Namespace) -> int:
    from customer360.serving import publish_serving_copy
    from customer360.serving.benchmark import build_synthetic_warehouse
    from customer360.serving.sql_endpoint.catalog import EndpointReader

    work = Path(tempfile.mkdtemp(prefix="c360-sql-compare-"))
    settings = Settings(warehouse=work / "warehouse.duckdb")
    print(f"load average at start {_load_average()}", flush=True)
    with duckdb.connect(str(settings.warehouse)) as con:
        build_synthetic_warehouse(con, customers=args.customers)
        publish = publish_serving_copy(con, settings, force=True)
    rows = sum(publish.rows.values())
    print(f"serving copy: {args.customers} customers, {rows} rows, {publish.bytes / 1e6:.1f} MB")

    # The endpoint: a new publication costs attaching the new file and its views (the
    # catalogue is built once, and again only when the marts' columns change).
    reader = EndpointReader(settings.serving_path)
    started = time.perf_counter()
    reader.current()
    first = time.perf_counter() - started
    opens = []
    for n in range(5):
        copy = settings.serving_path.with_name(f"republished-{n}.duckdb")
        shutil.copyfile(settings.serving_path, copy)
        os.replace(copy, settings.serving_path)  # a new publication: a new file at the path
        started = time.perf_counter()
        reader.current()
        opens.append(time.perf_counter() - started)
    reader.close()
    print(
        f"endpoint: first publication with the catalogue {first * 1000:.0f} ms, each new "
        f"publication median {statistics.median(opens) * 1000:.0f} ms (in the endpoint's "
        "process, on the first query after it; the pipeline pays nothing)"
    )

    pg_bin = Path("/usr/lib/postgresql")
    versions = sorted(pg_bin.glob("*/bin/initdb"))
    if not versions:
        print("real PostgreSQL: not measured (apt-get install postgresql)")
        return 0
    bindir = versions[-1].parent
    data = work / "pgdata"
    run_as = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
    if run_as:
        shutil.chown(work, "postgres")
    subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                             "c360"], check=True, capture_output=True)  # fmt: skip
    from customer360.services.processes import free_port

    port = free_port()
    subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(work / "pg.log"),
                             "-o", f"-p {port} -k {work} -c listen_addresses=127.0.0.1", "-w",
                             "start"], check=True, capture_output=True)  # fmt: skip
    try:
        _compare_postgres(settings, port, args.changed)
    finally:
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return 0


PG_TYPES = {"VARCHAR": "text", "DOUBLE": "double precision", "TIMESTAMP": "timestamp"}


def _compare_postgres(settings: Settings, port: int, changed: int) -> None:
    import psycopg

    serving = duckdb.connect(str(settings.serving_path), read_only=True)
    tables = [
        t
        for (t,) in serving.execute(
            "select table_name from duckdb_tables() where schema_name = 'main'"
        ).fetchall()
    ]
    conninfo = f"host=127.0.0.1 port={port} dbname=postgres user=c360"
    with psycopg.connect(conninfo, autocommit=True) as pg:
        columns = {}
        for table in tables:
            cols = serving.execute(
                "select column_name, data_type from duckdb_columns() where schema_name = 'main'"
                " and table_name = ? order by column_index",
                [table],
            ).fetchall()
            columns[table] = [c for c, _ in cols]
            ddl = ", ".join(f'"{c}" {PG_TYPES.get(t, t.lower())}' for c, t in cols)
            pg.execute(f'create table "{table}" ({ddl})')
        started = time.perf_counter()
        with pg.transaction():
            for table in tables:
                with pg.cursor().copy(f'copy "{table}" from stdin') as copy:
                    for row in serving.execute(f'select * from "{table}"').fetchall():
                        copy.write_row(row)
            for table in tables:
                if "customer_id" in columns[table]:
                    pg.execute(f'create index on "{table}" (customer_id)')
        full = time.perf_counter() - started
        print(f"real PostgreSQL: first full load of the serving copy (COPY + indexes) {full:.1f} s")
        # One micro-batch's worth: replace the rows of `changed` customers in every table, in
        # one transaction (what a pipeline hook would have to do with the touched ids).
        ids = random.Random(1).sample(range(1, 1 + pg.execute(
            "select count(*) from customer_360_base").fetchone()[0]), changed)  # fmt: skip
        times = []
        for _ in range(3):
            started = time.perf_counter()
            with pg.transaction():
                for table in tables:
                    if "customer_id" not in columns[table]:
                        continue
                    rows = serving.execute(
                        f'select * from "{table}" where customer_id in (select unnest(?))', [ids]
                    ).fetchall()
                    pg.execute(f'delete from "{table}" where customer_id = any(%s)', [ids])
                    with pg.cursor().copy(f'copy "{table}" from stdin') as copy:
                        for row in rows:
                            copy.write_row(row)
            times.append(time.perf_counter() - started)
        print(
            f"real PostgreSQL: upsert of {changed} touched customers in every mart, median "
            f"{statistics.median(times) * 1000:.0f} ms (plus reading them from the warehouse, "
            "in the pipeline's process, per micro-batch)"
        )
    serving.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m customer360.serving.sql_endpoint.benchmark")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="micro-batches with and without BI clients")
    load.add_argument("--customers", type=int, default=2000)
    load.add_argument("--days", type=int, default=60)
    load.add_argument("--rate", type=float, default=100, help="stream events/s")
    load.add_argument("--connections", type=int, default=50)
    load.add_argument("--think", type=float, default=1.0, help="s between a connection's refreshes")
    load.add_argument("--api-rate", type=float, default=100, help="profile API requests/s")
    load.add_argument("--phase", type=float, default=45, help="seconds per phase")
    load.add_argument("--rounds", type=int, default=1, help="rounds of the four phases")
    load.add_argument("--dir", help="scratch home (default: a new temporary directory)")
    load.add_argument("--sql-nice", default="10", help="`c360 sql --nice` (a number or idle)")
    load.add_argument("--api-nice", default="10", help="`c360 serve --nice` (a number or idle)")
    load.set_defaults(func=run_load)
    compare = sub.add_parser("compare", help="endpoint vs real PostgreSQL costs")
    compare.add_argument("--customers", type=int, default=100_000)
    compare.add_argument("--changed", type=int, default=1000, help="customers one batch touches")
    compare.set_defaults(func=run_compare)
    clients = sub.add_parser("_clients")
    for name in ("--conninfo", "--api", "--out"):
        clients.add_argument(name, required=True)
    for name, kind in (("--customers", int), ("--connections", int), ("--think", float),
                       ("--api-rate", float), ("--duration", float)):  # fmt: skip
        clients.add_argument(name, type=kind, required=True)
    clients.set_defaults(func=run_clients)
    args = parser.parse_args(argv)
    # SIGTERM or SIGHUP stop the run as Ctrl-C does: through the `finally` that stops the
    # services and processes it started (else a `kill` leaves them running).
    install_stop_handlers()
    try:
        return args.func(args)
    except StopRequested as stop:
        print(f"stopped ({stop}): its services and processes stopped", file=sys.stderr)
        return stop.exit_code


if __name__ == "__main__":
    sys.exit(main())
