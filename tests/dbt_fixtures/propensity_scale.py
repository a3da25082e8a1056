"""Time the nightly propensity training at scale.

    .venv/bin/python -m tests.dbt_fixtures.propensity_scale --events 10000000

Lands scale_check's synthetic history (`--events` events, one customer per 100 events: 10 M
events = 100,000 customers, 800,000 orders over nine months), builds it with dbt, then times
`train_and_rescore` (features as of two cutoffs, fit, validate, refit, store, rebuild
customer_propensity with --full-refresh, publish the serving copy) `--repeats` times.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from customer360.config import Settings
from customer360.pipeline.microbatch import MicroBatch
from customer360.propensity.nightly import train_and_rescore
from tests.dbt_fixtures.scale_check import land, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="history size")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (kept)")
    parser.add_argument("--reuse", action="store_true", help="--dir holds a built history")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="c360-propensity-"))
    work.mkdir(parents=True, exist_ok=True)
    batch = MicroBatch(Settings(warehouse=work / "warehouse.duckdb", home=work))
    if not args.reuse:
        users = max(args.events // 100, 10)
        timed("land history", lambda: land(batch.con, 1, args.events, users, 1))
        timed("dbt run --full-refresh", lambda: batch.dbt.run(["run"]).raise_on_failure())
    customers = batch.con.execute("select count(*) from marts.customer_360_base").fetchone()[0]
    for _ in range(args.repeats):
        started = time.perf_counter()
        result = train_and_rescore(batch)
        total = time.perf_counter() - started
        model = result.model
        print(
            f"{customers} customers: training {model.seconds:.1f} s ({model.train_examples} + "
            f"{model.validation_examples} examples), rescore {result.rescore.seconds:.1f} s, "
            f"total with publishing {total:.1f} s; AUC {model.validation_auc:.3f}; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    batch.close()


if __name__ == "__main__":
    main()
