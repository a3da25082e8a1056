"""What one micro-batch's replayed build costs, model by model, at scale.

    .venv/bin/python -m tests.dbt_fixtures.replay_cost --events 300000 --new-events 1000

Lands a synthetic history like `scale_check` (users, orders, weblogs, emails), builds it, lets
dbt build two small batches (so the micro-batch has learnt the statements to replay, see
customer360/pipeline/model_replay.py), then `--repeats` times lands `--new-events` more and runs
the learnt statements itself, one model after the other in one transaction (the micro-batch
runs two side by side, model_replay.py: here each model's time is its own), timing each
model: wall time and this process's CPU time (user + system, DuckDB's threads included, from
resource.getrusage), which a loaded machine inflates less than wall time. Prints the median
per model and for the whole batch, with the load average.

`--project-dir` builds with another copy of the dbt project, to compare two versions of it on
the same synthetic data, e.g. an earlier commit's: `git worktree add /tmp/before <commit>`,
then `--project-dir /tmp/before/dbt`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from customer360.config import Settings
from customer360.pipeline.dbt_invoker import DbtInvoker
from customer360.pipeline.microbatch import MicroBatch
from customer360.pipeline.model_replay import models_to_build, temporary_tables
from extractors import SOURCES
from tests.dbt_fixtures.scale_check import build, land


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def replay_timed(batch: MicroBatch, models: list[str]) -> dict[str, tuple[float, float]]:
    """Replay `models` one after the other in one transaction (ModelReplay.replay runs two
    side by side), returning (wall, cpu) seconds per model."""
    statements = batch.replay._agreed
    con = batch.con
    timings = {}
    con.execute("begin")
    existing = temporary_tables(con)
    for unique_id in models:
        wall, cpu = time.perf_counter(), cpu_seconds()
        for sql in statements[unique_id]:
            con.execute(sql)
        timings[unique_id] = (time.perf_counter() - wall, cpu_seconds() - cpu)
    for name in temporary_tables(con) - existing:
        con.execute(f'drop table temp.main."{name}"')
    con.execute("commit")
    return timings


class ReplayTimings:
    """(wall, cpu) seconds of replayed batches, per model and per batch."""

    def __init__(self) -> None:
        self.per_model: dict[str, list[tuple[float, float]]] = {}
        self.totals: list[tuple[float, float]] = []

    def replay(self, batch: MicroBatch) -> None:
        """Replay the models the landed batches need, timed (see replay_timed)."""
        models = models_to_build(batch.dbt.manifest_dict(), batch.sources_to_build())
        assert batch.replay.can_replay(models), "dbt's statements were not learnt"
        timings = replay_timed(batch, models)
        for unique_id, spent in timings.items():
            self.per_model.setdefault(unique_id, []).append(spent)
        wall = sum(w for w, _ in timings.values())
        self.totals.append((wall, sum(c for _, c in timings.values())))

    def print_medians(self, slowest_first: bool = False) -> None:
        """The median per model (in build order, or slowest first) and per batch, in ms."""
        rows = list(self.per_model.items())
        if slowest_first:
            rows.sort(key=lambda row: -statistics.median(w for w, _ in row[1]))
        print(f"{'model':40} {'wall ms':>8} {'cpu ms':>8}")
        for name, spent in [*((u.rsplit(".", 1)[-1], s) for u, s in rows), ("total", self.totals)]:
            wall = statistics.median(w for w, _ in spent) * 1000
            cpu = statistics.median(c for _, c in spent) * 1000
            print(f"{name:40} {wall:8.1f} {cpu:8.1f}")


def next_batch_id(batch: MicroBatch) -> int:
    return 1 + max(
        batch.con.execute(f"select coalesce(max(batch_id), 0) from raw.{s}").fetchone()[0]
        for s in SOURCES
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000, help="history size")
    parser.add_argument("--new-events", type=int, default=1_000, help="events per new batch")
    parser.add_argument("--repeats", type=int, default=5, help="replayed builds to time")
    parser.add_argument("--dir", type=Path, default=None, help="work folder")
    parser.add_argument(
        "--project-dir", type=Path, default=None, help="the dbt project (default: this one's)"
    )
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="c360-replay-cost-"))
    work.mkdir(parents=True, exist_ok=True)
    users = max(args.events // 100, 10)
    batch = MicroBatch(
        Settings(warehouse=work / "warehouse.duckdb", home=work), data_tests_every_s=None
    )
    if args.project_dir is not None:
        batch.dbt = DbtInvoker(batch.settings, project_dir=args.project_dir.absolute())
    land(batch.con, 1, args.events, users, 1)
    batch.dbt.run(["run", "--full-refresh"]).raise_on_failure()
    build(batch, all_sources=True)
    start = 3 * 10**9
    for _ in range(2):  # two dbt builds that agree: the statements become replayable
        land(batch.con, next_batch_id(batch), args.new_events, users, start)
        start += 10**9
        build(batch)
    timings = ReplayTimings()
    for _ in range(args.repeats):
        land(batch.con, next_batch_id(batch), args.new_events, users, start)
        start += 10**9
        timings.replay(batch)
    print(
        f"dbt project {batch.dbt.project_dir}: "
        f"history {args.events} events, {args.new_events} new events a batch, "
        f"median of {args.repeats} replayed batches; load average {os.getloadavg()}"
    )
    timings.print_medians()


if __name__ == "__main__":
    main()
