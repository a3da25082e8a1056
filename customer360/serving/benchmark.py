"""Serving benchmark (not a test): publish cost and profile API latency at scale.

    python -m customer360.serving.benchmark --customers 100000 --dir /tmp/c360-bench

builds a warehouse whose `marts` have the contract's columns and realistic row counts per
customer (synthetic values, no services needed), times `publish_serving_copy` and then the p50 /
p99 of `GET /api/customers/{id}` over random ids, over HTTP to uvicorn on loopback (one client),
in `--rounds` rounds. The machine may be shared: each round prints the load average (1, 5 and
15 min) at its start and end next to its figures, and the CPU time per request (this process:
server and client), which depends much less on the load than the latency does. `--reuse` skips
the build and the publish when `--dir` holds a serving copy already (to repeat the rounds).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import duckdb

from customer360.config import Settings
from customer360.serving.publish import publish_serving_copy

# The marts as dbt builds them (tables customer_360_base and customer_popular_items with their
# batch marks, the other marts views), with synthetic values. The views' rules that matter to
# the serving copy (`age`) are dbt's own macro, rendered by `dbt_macro_sql`.
SYNTHETIC_MARTS_SQL = """
create schema if not exists intermediate;
create schema if not exists marts;
create or replace table intermediate.dbt_watermarks as
    select 'customer_360_base' as model, 'users' as source, {batch} as batch_id;
create or replace table intermediate.int_customers as
    select
        i as customer_id, 'doc' || i as document_key, 'First' || i as first_name,
        'Last' || (i % 5000) as last_name, 'user' || i || '@example.com' as email,
        case when i % 2 = 0 then 'F' else 'M' end as gender,
        date '1950-01-01' + cast(i % 20000 as integer) as dob,
        'City' || (i % 300) as city, 'Country' || (i % 40) as country
    from range(1, {n} + 1) t(i);
create or replace view marts.customer_details as
    select customer_id, first_name, last_name, email, gender, dob, {age} as age, city, country
    from intermediate.int_customers;
create or replace table marts.customer_popular_items as
    select c.customer_id, 'PRODUCT ' || ((c.customer_id * 7 + p) % 500) as product_name,
        1 + p as purchases, timestamp '2026-01-01' + to_minutes(c.customer_id + p) as last_purchased_at,
        {batch} as _users_batch_id, 1 as _online_orders_batch_id, 1 as _instore_orders_batch_id
    from intermediate.int_customers c, range(8) t(p);
create or replace table intermediate.int_weblog_rollup as
    select c.customer_id, 'Error ' || k as error_message, 'page' || k || '.html' as page,
        1 + k as events, timestamp '2026-01-01' + to_minutes(c.customer_id % 5000 + k) as last_at,
        1 as _batch_id
    from intermediate.int_customers c, range(3) t(k) where c.customer_id % 3 = 0;
create or replace view marts.customer_recent_errors as
    select customer_id, error_message, page, last_at, events as occurrences
    from intermediate.int_weblog_rollup
    where customer_id in (select customer_id from intermediate.int_customers);
create or replace table marts.customer_360_base as
    select d.customer_id, d.first_name, d.last_name, d.email, d.gender, d.dob, d.city, d.country,
        4 as online_orders, 10 as online_items_purchased, cast(100.5 as decimal(18, 2)) as online_amount_spent,
        3 as instore_orders, 6 as instore_items_purchased, cast(50.25 as decimal(18, 2)) as instore_amount_spent,
        7 as total_orders, 16 as total_items_purchased, cast(150.75 as decimal(18, 2)) as total_amount_spent,
        'PRODUCT 1' as favourite_product, 8 as favourite_product_purchases,
        timestamp '2026-01-01' as last_instore_order_at, timestamp '2026-01-01' as last_online_order_at,
        timestamp '2026-01-01' as last_email_sent_at, timestamp '2026-01-01' as last_email_opened_at,
        timestamp '2026-01-01' as last_email_clicked_at, timestamp '2026-01-01' as last_website_visit_at,
        timestamp '2026-01-01' as last_website_login_at, 'Error 1' as latest_error_message,
        'page1.html' as latest_error_page, timestamp '2026-01-01' as latest_error_at,
        timestamp '2026-01-01' + to_seconds({batch}) as as_of, {batch} as _users_batch_id
    from intermediate.int_customers d;
create or replace table marts.customer_identities as
    select customer_id, 'customer_id' as identifier_type, cast(customer_id as varchar) as identifier,
        timestamp '2025-01-01' as first_seen_at, timestamp '2026-01-01' as last_seen_at
    from intermediate.int_customers
    union all
    select customer_id, 'email', email, timestamp '2025-01-01', timestamp '2026-01-01'
    from intermediate.int_customers
    union all
    select customer_id, 'anonymous_id', 'anon-' || customer_id, timestamp '2025-06-01',
        timestamp '2026-01-01'
    from intermediate.int_customers where customer_id % 3 = 0;
create or replace view marts.customer_activity as
    select customer_id, 'Instore Order' as event, last_instore_order_at as last_at
    from marts.customer_360_base where last_instore_order_at is not null
    union all
    select customer_id, 'Website Visit' as event, last_website_visit_at as last_at
    from marts.customer_360_base where last_website_visit_at is not null;
create or replace view marts.customer_purchase_stats as
    select customer_id, 'Online' as channel, online_orders as number_of_orders,
        online_items_purchased as number_of_items_purchased,
        cast(online_items_purchased / online_orders as decimal(18, 2)) as items_per_order,
        online_amount_spent as amount_spent
    from marts.customer_360_base where online_orders > 0
    union all
    select customer_id, 'Instore' as channel, instore_orders as number_of_orders,
        instore_items_purchased as number_of_items_purchased,
        cast(instore_items_purchased / instore_orders as decimal(18, 2)) as items_per_order,
        instore_amount_spent as amount_spent
    from marts.customer_360_base where instore_orders > 0;
"""  # noqa: E501
DBT_MACROS = Path(__file__).resolve().parents[2] / "dbt" / "macros"


def dbt_macro_sql(file: str, call: str) -> str:
    """SQL of a dbt macro call as dbt-duckdb renders it (its `dbt.current_timestamp()` is
    `now()`), for synthetic relations that must follow the dbt project's own rule."""
    import jinja2

    text = (DBT_MACROS / file).read_text()
    context = {"dbt": SimpleNamespace(current_timestamp=lambda: "now()")}
    return str(jinja2.Environment().from_string(text + "{{ " + call + " }}").render(context))


def build_synthetic_warehouse(con: duckdb.DuckDBPyConnection, customers: int, batch: int = 1):
    age = dbt_macro_sql("age_in_years.sql", "age_in_years('dob', reading_date())").strip()
    con.execute(SYNTHETIC_MARTS_SQL.format(n=customers, batch=batch, age=age))
    # customer_360 as the contract orders it: age right after dob.
    columns = [
        r[0]
        for r in con.execute(
            "select column_name from duckdb_columns() where schema_name = 'marts'"
            " and table_name = 'customer_360_base' and column_name not like '\\_%' escape '\\'"
            " order by column_index"
        ).fetchall()
    ]
    select = ", ".join(c if c != "dob" else f"dob, {age} as age" for c in columns)
    con.execute(
        f"create or replace view marts.customer_360 as select {select} from marts.customer_360_base"
    )


def build_and_publish(settings: Settings, customers: int) -> None:
    settings.warehouse.unlink(missing_ok=True)
    with duckdb.connect(str(settings.warehouse)) as con:
        started = time.monotonic()
        build_synthetic_warehouse(con, customers)
        print(f"synthetic warehouse: {customers} customers in {time.monotonic() - started:.1f} s")
        times = []
        for run in range(3):
            con.execute(f"update intermediate.dbt_watermarks set batch_id = {run + 2}")
            result = publish_serving_copy(con, settings, force=True)  # a full copy
            times.append(result.seconds)
            print(result.summary_line())
    print(
        f"publish: median {statistics.median(times) * 1000:.0f} ms over {len(times)} runs "
        f"(load average {_load(os.getloadavg())})"
    )


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-serving-bench"))
    parser.add_argument("--requests", type=int, default=2000, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the serving copy in --dir if there is one"
    )
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(warehouse=args.dir / "warehouse.duckdb")
    if args.reuse and settings.serving_path.exists():
        with duckdb.connect(str(settings.serving_path), read_only=True) as con:
            customers = con.execute("select customers from serving_publication").fetchone()[0]
        if customers != args.customers:
            parser.error(f"--reuse: {settings.serving_path} has {customers} customers")
        print(f"reusing {settings.serving_path} ({customers} customers)")
    else:
        build_and_publish(settings, args.customers)

    from customer360.serving.server import BackgroundServer

    with BackgroundServer(settings, port=0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        client = http.client.HTTPConnection(host, int(port))  # one keep-alive connection

        def get(path: str) -> int:
            client.request("GET", path)
            response = client.getresponse()
            response.read()
            return response.status

        for customer_id in random.sample(range(1, args.customers + 1), 50):  # warm up
            get(f"/api/customers/{customer_id}")
        for _ in range(args.rounds):
            ids = [random.randint(1, args.customers) for _ in range(args.requests)]
            load_before, cpu_before = os.getloadavg(), time.process_time()
            latencies = []
            for customer_id in ids:
                started = time.perf_counter()
                status = get(f"/api/customers/{customer_id}")
                latencies.append(time.perf_counter() - started)
                assert status == 200, status
            load_after = os.getloadavg()
            cpu_ms = (time.process_time() - cpu_before) * 1000 / len(ids)
            latencies.sort()
            p50, p90, p99 = (latencies[int(len(latencies) * q)] * 1000 for q in (0.5, 0.9, 0.99))
            print(
                f"GET /api/customers/{{id}}: p50 {p50:.2f} ms, p90 {p90:.2f} ms, "
                f"p99 {p99:.2f} ms, max {latencies[-1] * 1000:.2f} ms ({len(ids)} requests, "
                f"{cpu_ms:.2f} ms CPU each; load average {_load(load_before)} -> "
                f"{_load(load_after)} on {os.cpu_count()} CPUs)"
            )


if __name__ == "__main__":
    main()
