"""Serving benchmark (not a test): publish cost and profile API latency at scale.

    python -m customer360.serving.benchmark --customers 100000 --dir /tmp/c360-bench

builds a warehouse whose `marts` have the contract's columns and realistic row counts per
customer (synthetic values, no services needed), times `publish_serving_copy` and then the p50 /
p99 of `GET /api/customers/{id}` over random ids, over HTTP to uvicorn on loopback (one client).
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import time
from pathlib import Path

import duckdb

from customer360.config import Settings
from customer360.serving.publish import publish_serving_copy

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
    select customer_id, first_name, last_name, email, gender, dob,
        date_diff('year', dob, current_date) as age, city, country
    from intermediate.int_customers;
create or replace table marts.customer_purchase_stats as
    select c.customer_id, ch.channel, 1 + c.customer_id % 9 as number_of_orders,
        3 + c.customer_id % 20 as number_of_items_purchased, cast(2.5 as decimal(18, 2)) as items_per_order,
        cast(10 + (c.customer_id % 997) * 3.17 as decimal(18, 2)) as amount_spent,
        1 as _users_batch_id, 1 as _online_orders_batch_id, 1 as _instore_orders_batch_id
    from intermediate.int_customers c, (values ('Online'), ('Instore')) ch(channel);
create or replace table marts.customer_popular_items as
    select c.customer_id, 'PRODUCT ' || ((c.customer_id * 7 + p) % 500) as product_name,
        1 + p as purchases, timestamp '2026-01-01' + to_minutes(c.customer_id + p) as last_purchased_at,
        1 as _users_batch_id, 1 as _online_orders_batch_id, 1 as _instore_orders_batch_id
    from intermediate.int_customers c, range(8) t(p);
create or replace table marts.customer_activity as
    select c.customer_id, e.event, timestamp '2026-01-01' + to_minutes(c.customer_id % 100000) as last_at,
        1 as _users_batch_id, 1 as _online_orders_batch_id, 1 as _instore_orders_batch_id,
        1 as _weblogs_batch_id, 1 as _emails_batch_id
    from intermediate.int_customers c,
        (values ('Instore Order'), ('Online Order'), ('Email Sent'), ('Email Opened'),
                ('Email Clicked'), ('Website Visit'), ('Website Login')) e(event);
create or replace table marts.customer_recent_errors as
    select c.customer_id, 'Error ' || k as error_message, 'page' || k || '.html' as page,
        timestamp '2026-01-01' + to_minutes(c.customer_id % 5000 + k) as last_at, 1 + k as occurrences,
        1 as _users_batch_id, 1 as _weblogs_batch_id
    from intermediate.int_customers c, range(3) t(k) where c.customer_id % 3 = 0;
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
        timestamp '2026-01-01' + to_seconds({batch}) as as_of, 1 as _users_batch_id
    from intermediate.int_customers d;
"""  # noqa: E501


def build_synthetic_warehouse(con: duckdb.DuckDBPyConnection, customers: int, batch: int = 1):
    con.execute(SYNTHETIC_MARTS_SQL.format(n=customers, batch=batch))
    # customer_360 as the contract orders it: age right after dob.
    con.execute(
        "create or replace view marts.customer_360 as select customer_id, first_name, last_name,"
        " email, gender, dob, date_diff('year', dob, current_date) as age,"
        " * exclude (customer_id, first_name, last_name, email, gender, dob, _users_batch_id)"
        " from marts.customer_360_base"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-serving-bench"))
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(warehouse=args.dir / "warehouse.duckdb")
    settings.warehouse.unlink(missing_ok=True)
    con = duckdb.connect(str(settings.warehouse))
    started = time.monotonic()
    build_synthetic_warehouse(con, args.customers)
    print(f"synthetic warehouse: {args.customers} customers in {time.monotonic() - started:.1f} s")
    times = []
    for run in range(3):
        con.execute(f"update intermediate.dbt_watermarks set batch_id = {run + 2}")
        result = publish_serving_copy(con, settings)
        times.append(result.seconds)
        print(result.summary_line())
    print(f"publish: median {statistics.median(times) * 1000:.0f} ms over {len(times)} runs")

    from customer360.serving.server import BackgroundServer

    with BackgroundServer(settings, port=0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        client = http.client.HTTPConnection(host, int(port))  # one keep-alive connection

        def get(path: str) -> int:
            client.request("GET", path)
            response = client.getresponse()
            response.read()
            return response.status

        ids = [random.randint(1, args.customers) for _ in range(args.requests)]
        for customer_id in ids[:50]:  # warm up
            get(f"/api/customers/{customer_id}")
        latencies = []
        for customer_id in ids:
            started = time.perf_counter()
            status = get(f"/api/customers/{customer_id}")
            latencies.append(time.perf_counter() - started)
            assert status == 200, status
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99)] * 1000
        print(
            f"GET /api/customers/{{id}}: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(ids)} requests)"
        )


if __name__ == "__main__":
    main()
