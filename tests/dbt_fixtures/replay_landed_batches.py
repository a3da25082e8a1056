"""What one micro-batch's replayed build costs on a real warehouse, replaying its own batches.

    .venv/bin/python -m tests.dbt_fixtures.replay_landed_batches \\
        --warehouse bench-results/warehouse.duckdb --repeats 12

`replay_cost` lands a synthetic history (sequential ids, its own proportions); this takes a
warehouse the pipeline built, such as `c360 bench --out DIR`'s DIR/warehouse.duckdb (the
generator's data: UUID and ObjectId keys, the sources' proportions), copies it, rebuilds the
copy with `dbt run --full-refresh` (so any version of the project can be compared on the same
data: `--project-dir`), then lands again, as new batches, the raw rows of the warehouse's own
micro-batches of `--from-batch` to `--to-batch` (default: the weblog batches of 300 to 3,000
records, the load's), one micro-batch at a time: Kafka records at new offsets (weblogs with new
event ids, so they are new events, and times later than every stored one, as the stream's),
Mongo changes at later cluster times (updates of the same documents). `--share` keeps that
percentage of each (a batch of the 10 M-event bench's load has ~2,500 records; 40 gives
~1,000). dbt builds the first batches until every model's statements are learnt; the next
`--repeats` are replayed as the micro-batch does and timed per model, as in replay_cost, each
followed by the pipeline's checkpoint (untimed). The copy is left in `--dir`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import duckdb

from customer360.config import Settings
from customer360.pipeline.dbt_invoker import DbtInvoker
from customer360.pipeline.microbatch import MicroBatch
from customer360.pipeline.model_replay import models_to_build
from extractors import SOURCES
from tests.dbt_fixtures.replay_cost import ReplayTimings

MONGO_TABLES = ("users", "online_orders", "instore_orders")
KAFKA_TABLES = ("weblogs", "marketing_emails")
# Far beyond any offset or cluster time the pipeline landed: re-landed rows are new positions.
OFFSET_STEP = 10**9
SECONDS_STEP = 1_000


def load_batches(con: duckdb.DuckDBPyConnection, first: int | None, last: int | None) -> list:
    """[start, end) batch id ranges, one per micro-batch of the load: from one weblog batch to
    the next (every source's batch of a micro-batch lies between)."""
    if first is None:
        where = "records between 300 and 3000"
    else:
        where = f"batch_id between {first} and {last}"
    starts = [
        batch_id
        for (batch_id,) in con.execute(
            "select batch_id from (select batch_id, count(*) as records from raw.weblogs"
            f" group by batch_id) where {where} order by batch_id"
        ).fetchall()
    ]
    if len(starts) < 2:
        raise SystemExit(
            f"fewer than two weblog batches match ({where}): give --from-batch and --to-batch"
        )
    return list(zip(starts[:-1], starts[1:], strict=True))


def land_again(
    con: duckdb.DuckDBPyConnection, span: tuple[int, int], round_: int, share: int
) -> int:
    """Land the raw rows of batches [span) again as new batches; returns the records landed."""
    low, high = span
    top = con.execute(
        "select max(top) from ("
        + " union all ".join(f"select max(batch_id) as top from raw.{t}" for t in SOURCES)
        + ")"
    ).fetchone()[0]
    shift = top + 1 - low
    kept = f"batch_id >= {low} and batch_id < {high}"
    records = 0
    for table in MONGO_TABLES:
        records += con.execute(
            f"insert into raw.{table} select batch_id + {shift}, now()::timestamp, operation,"
            f" document_key, cluster_time + ({round_ * SECONDS_STEP}::bigint << 32),"
            f" cluster_at + to_seconds({round_ * SECONDS_STEP}), document from raw.{table}"
            f" where {kept} and hash(document_key) % 100 < {share}"
        ).fetchone()[0]
    for table in KAFKA_TABLES:
        value = "value"
        if table == "weblogs":
            # A new event id (a new event, not a duplicate of the stored one) at a later time,
            # as the stream's: events of a browser come after its stored ones, so a login is
            # late only as often as in the stream (int_anonymous_weblog_rollup recomputes a
            # browser with a late login from all its events).
            renamed = f"""replace(value, '"event_id":"', '"event_id":"replayed-{round_}-')"""
            later = (
                "(try_cast(json_extract_string(value, '$.date') as timestamptz) at time zone"
                f" 'UTC') + to_seconds({round_ * SECONDS_STEP})"
            )
            value = (
                f"""coalesce(regexp_replace({renamed}, '"date":"[^"]*"', '"date":"' ||"""
                f""" strftime({later}, '%Y-%m-%dT%H:%M:%S.%g') || '+00:00"'), {renamed})"""
            )
        records += con.execute(
            f"insert into raw.{table} select batch_id + {shift}, now()::timestamp, topic,"
            f' "partition", "offset" + {round_ * OFFSET_STEP}, "key", "timestamp", {value}'
            f' from raw.{table} where {kept} and hash("offset") % 100 < {share}'
        ).fetchone()[0]
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, required=True, help="a pipeline's warehouse")
    parser.add_argument("--repeats", type=int, default=12, help="replayed builds to time")
    parser.add_argument("--share", type=int, default=100, help="%% of each batch's rows landed")
    parser.add_argument("--from-batch", type=int, default=None, help="first batch id re-landed")
    parser.add_argument("--to-batch", type=int, default=None, help="last batch id re-landed")
    parser.add_argument("--dir", type=Path, default=None, help="work folder")
    parser.add_argument(
        "--project-dir", type=Path, default=None, help="the dbt project (default: this one's)"
    )
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="c360-replay-landed-"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.warehouse, work / "warehouse.duckdb")
    batch = MicroBatch(
        Settings(warehouse=work / "warehouse.duckdb", home=work), data_tests_every_s=None
    )
    if args.project_dir is not None:
        batch.dbt = DbtInvoker(batch.settings, project_dir=args.project_dir.absolute())
    con = batch.con
    spans = load_batches(con, args.from_batch, args.to_batch)
    print(f"{len(spans)} micro-batches to re-land; dbt run --full-refresh of the copy ...")
    batch.dbt.run(["run", "--full-refresh"]).raise_on_failure()
    batch.checkpoint()
    every_model = models_to_build(batch.dbt.manifest_dict(), SOURCES)
    round_ = 0
    while round_ < 2 or not batch.replay.can_replay(every_model):
        if round_ >= 10:
            raise SystemExit(f"not learnt after 10 builds: {batch.replay.unlearnt(every_model)}")
        round_ += 1
        land_again(con, spans[round_ % len(spans)], round_, args.share)
        batch.build_models(batch.sources_to_build(), data_tests=False).raise_on_failure()
        batch.checkpoint()
    timings, sizes = ReplayTimings(), []
    for _ in range(args.repeats):
        round_ += 1
        sizes.append(land_again(con, spans[round_ % len(spans)], round_, args.share))
        timings.replay(batch)
        batch.checkpoint()  # as the pipeline does after each batch, untimed here
    print(
        f"dbt project {batch.dbt.project_dir}: {args.warehouse}, batches of"
        f" {min(sizes)}-{max(sizes)} records (median {statistics.median(sizes):.0f}), median of"
        f" {args.repeats} replayed batches; load average {os.getloadavg()}"
    )
    timings.print_medians(slowest_first=True)


if __name__ == "__main__":
    main()
