"""Time a full refresh against an incremental build after a small batch, at scale.

    .venv/bin/python -m tests.dbt_fixtures.scale_check --events 2000000 --new-events 1000

Lands synthetic raw rows with SQL (like the extractors would: relaxed extended JSON documents,
Kafka values), runs `dbt run --full-refresh`, lands `--new-events` more (weblogs, emails and a
few orders and users changes) in new batches, and times `dbt run` and `dbt build`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from extractors.landing_schema import RAW_SCHEMA_DDL
from tests.dbt_fixtures.dbt_invoke import run_dbt

USERS_SQL = """
insert into raw.users
select {batch}, now()::timestamp, 'snapshot', printf('%024x', i), (1700000000::bigint << 32) + i,
    to_timestamp(1700000000)::timestamp,
    '{{"_id": {{"$oid": "' || printf('%024x', i) || '"}}, "id": ' || i
    || ', "first_name": "F' || i || '", "last_name": "L", "email": "c' || i || '@x.com",'
    || ' "gender": "F", "dob": "19' || (50 + i % 50) || '-0' || (1 + i % 9) || '-1' || (i % 9)
    || '", "address": {{"street": "s", "city": "C' || (i % 100) || '", "postcode": "1",'
    || ' "country": "FR"}}, "created_at": {{"$date": "2025-01-01T00:00:00Z"}},'
    || ' "updated_at": {{"$date": "2025-01-01T00:00:00Z"}}}}'
from range({start}, {stop}) t(i)
"""

ORDERS_SQL = """
insert into raw.{table}
select {batch}, now()::timestamp, 'insert', printf('%024x', {offset} + i),
    (1700000100::bigint << 32) + i, to_timestamp(1700000100)::timestamp,
    '{{"_id": {{"$oid": "' || printf('%024x', {offset} + i) || '"}}, "user_id": '
    || (1 + hash(i) % {users}) || ', "date": {{"$date": "2026-0' || (1 + i % 9)
    || '-1' || (i % 9) || 'T10:00:00.123Z"}}, "items": [{{"product_id": "p1", "product_name":'
    || ' "Shirt ' || (i % 50) || '", "category": "Tops", "price": 49.99, "quantity": 1}},'
    || ' {{"product_id": "p2", "product_name": "Hat", "category": "Acc", "price": 15,'
    || ' "quantity": 2}}], "status": "new", "store": {{"store_id": "S1", "name": "n",'
    || ' "city": "c"}}}}'
from range({start}, {stop}) t(i)
"""

WEBLOGS_SQL = """
insert into raw.weblogs
select {batch}, now()::timestamp, 'weblogs', i % 3, i, null,
    to_timestamp(1770000000 + i)::timestamp,
    '{{"event_id": "ev-' || i || '", "user_id": ' || (1 + hash(i) % {users})
    || ', "date": "' || strftime(to_timestamp(1770000000 + i), '%Y-%m-%dT%H:%M:%S')
    || '.123+00:00", "session_id": "s", "page": "'
    || (case when i % 7 = 0 then 'login_success.html' else 'home.html' end)
    || '", "action": "view", "error_message": '
    || (case when i % 11 = 0 then '"Timeout"' else 'null' end) || '}}'
from range({start}, {stop}) t(i)
"""

EMAILS_SQL = """
insert into raw.marketing_emails
select {batch}, now()::timestamp, 'marketing_emails', i % 3, i, null,
    to_timestamp(1770000000 + i)::timestamp,
    '{{"email_id": "em-' || (i // 2) || '", "user_id": ' || (1 + hash(i // 2) % {users})
    || ', "date": "' || strftime(to_timestamp(1770000000 + i // 2), '%Y-%m-%dT%H:%M:%S')
    || '+00:00", "campaign": "c", "items": ["Hat"], "email_opened": '
    || (case when i % 2 = 1 then 'true' else 'false' end)
    || ', "email_clicked": false, "updated_at": "'
    || strftime(to_timestamp(1770000000 + i), '%Y-%m-%dT%H:%M:%S') || '+00:00"}}'
from range({start}, {stop}) t(i)
"""


def land(path: Path, batch: int, events: int, users: int, start: int) -> int:
    """Land `events` events split over the five tables from position `start`; returns the
    next batch id."""
    weblogs = events * 70 // 100
    emails = events * 20 // 100
    orders = events * 4 // 100
    new_users = max(events - weblogs - emails - 2 * orders, 0)
    with duckdb.connect(str(path)) as con:
        con.execute(RAW_SCHEMA_DDL)
        con.execute(USERS_SQL.format(batch=batch, start=start, stop=start + new_users))
        for offset, table in ((0, "online_orders"), (1 << 60, "instore_orders")):
            batch += 1
            con.execute(
                ORDERS_SQL.format(
                    batch=batch,
                    table=table,
                    offset=offset,
                    users=users,
                    start=start,
                    stop=start + orders,
                )
            )
        batch += 1
        con.execute(WEBLOGS_SQL.format(batch=batch, users=users, start=start, stop=start + weblogs))
        batch += 1
        con.execute(EMAILS_SQL.format(batch=batch, users=users, start=start, stop=start + emails))
        con.execute("checkpoint")
    return batch + 1


def timed(label: str, function) -> float:
    started = time.perf_counter()
    function()
    elapsed = time.perf_counter() - started
    print(f"{label}: {elapsed:.2f} s", flush=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--new-events", type=int, default=1_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="c360-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "warehouse.duckdb"
    users = max(args.events // 100, 10)
    timed("land history", lambda: land(path, 1, args.events, users, 1))
    full = timed(
        "dbt run --full-refresh", lambda: run_dbt(path, "run", "--full-refresh", work_dir=work)
    )
    timed("dbt run (nothing new)", lambda: run_dbt(path, "run", work_dir=work))
    land(path, 100, args.new_events, users, 10**9)
    incremental = timed("dbt run after new events", lambda: run_dbt(path, "run", work_dir=work))
    print(f"incremental / full refresh: {incremental / full:.1%}")
    land(path, 200, args.new_events, users, 2 * 10**9)
    timed("dbt build after new events", lambda: run_dbt(path, "build", work_dir=work))


if __name__ == "__main__":
    main()
