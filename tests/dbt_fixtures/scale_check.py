"""Time a full refresh against an incremental build after a small batch, at scale.

    .venv/bin/python -m tests.dbt_fixtures.scale_check --events 2000000 --new-events 1000

Lands synthetic raw rows with SQL (like the extractors would: relaxed extended JSON documents,
Kafka values), runs `dbt run --full-refresh`, then `--repeats` times lands `--new-events` more
(weblogs, emails and a few orders and users changes) in new batches and times the micro-batch's
own dbt step (`MicroBatch.build_models`: warm manifest, models downstream of the changed sources,
no data tests), both in this process with the parsed manifest kept warm.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from customer360.config import Settings
from customer360.pipeline.microbatch import MicroBatch
from extractors import SOURCES
from extractors.landing_schema import RAW_SCHEMA_DDL

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


def land(con: duckdb.DuckDBPyConnection, batch: int, events: int, users: int, start: int) -> int:
    """Land `events` events split over the five tables from position `start`; returns the
    next batch id."""
    weblogs = events * 70 // 100
    emails = events * 20 // 100
    orders = events * 4 // 100
    new_users = max(events - weblogs - emails - 2 * orders, 0)
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="history size")
    parser.add_argument("--new-events", type=int, default=1_000, help="events per new batch")
    parser.add_argument("--repeats", type=int, default=3, help="incremental builds to time")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (kept)")
    parser.add_argument(
        "--reuse", action="store_true", help="--dir already holds a landed, built history"
    )
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="c360-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "warehouse.duckdb"
    users = max(args.events // 100, 10)
    # The micro-batch's own dbt step: warm manifest, models downstream of changed sources only.
    batch = MicroBatch(Settings(warehouse=path, home=work), data_tests_every_s=None)
    full = None
    if not args.reuse:
        timed("land history", lambda: land(batch.con, 1, args.events, users, 1))
        batch.dbt.manifest()  # parse once, as a warm process has
        full = timed(
            "dbt run --full-refresh",
            lambda: batch.dbt.run(["run", "--full-refresh"]).raise_on_failure(),
        )
    timed("first incremental build (views too)", lambda: build(batch, all_sources=True))
    next_batch = 1 + max(
        batch.con.execute(f"select coalesce(max(batch_id), 0) from raw.{s}").fetchone()[0]
        for s in SOURCES
    )
    times = []
    for repeat in range(args.repeats):
        next_batch = land(batch.con, next_batch, args.new_events, users, (3 + repeat) * 10**9)
        times.append(timed(f"micro-batch dbt after {args.new_events} events", lambda: build(batch)))
    incremental = sorted(times)[len(times) // 2]
    print(f"median incremental: {incremental:.2f} s")
    if full:
        print(f"incremental / full refresh: {incremental / full:.1%}")


def build(batch: MicroBatch, all_sources: bool = False) -> None:
    sources = list(SOURCES) if all_sources else batch.sources_to_build()
    result = batch.build_models(sources)
    if result is not None:
        result.raise_on_failure()


if __name__ == "__main__":
    main()
