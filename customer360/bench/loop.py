"""The micro-batch loop process of `c360 bench --mode loop`: a warm `MicroBatch`, run back to back.

    python -m customer360.bench.loop --report batches.jsonl

Reads its Settings from the C360_* environment like every command. Appends one JSON line per
micro-batch that did something (records landed, models built or a copy published) to
`--report`, with the split of its time, until SIGTERM or SIGINT. It is what the stream run of
`c360 up` does (`dagster_project/stream.py`), minus Dagster: the difference between the two
modes is Dagster's overhead (the run worker, its event log and asset events).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path

from customer360.config import load_settings

# A micro-batch that found nothing waits this long before looking again.
IDLE_PAUSE_S = 0.1


def batch_record(result, started_at: float, ended_at: float) -> dict:
    """One line of the report: when, how many records, and where the time went."""
    models = result.dbt.model_seconds if result.dbt is not None else {}
    published = bool(result.serving is not None and result.serving.published)
    return {
        "started_at": started_at,
        "ended_at": ended_at,
        "records": result.records,
        "by_source": {s: r.records for s, r in result.extracts.items()},
        "extract_s": result.extract_seconds,
        "extract_by_source_s": {s: r.seconds for s, r in result.extracts.items()},
        "dbt_s": result.dbt_seconds,
        "dbt_invoke_s": result.dbt.seconds if result.dbt is not None else 0.0,
        "replayed": bool(result.dbt is not None and result.dbt.replayed),
        "publish_s": result.publish_seconds,
        "checkpoint_s": result.checkpoint_seconds,
        "published": published,
        # Customers whose rows the publication replaced (0 when it copied every mart in full).
        "customers_replaced": result.serving.customers_replaced if published else 0,
        "publish_mode": result.serving.mode if published else "",
        "models": models,
        "tests": len(result.dbt.tests_run) if result.dbt is not None else 0,
        "success": result.success,
        "errors": list(result.extract_errors.values())
        + (result.dbt.failures if result.dbt is not None and not result.dbt.success else []),
    }


def run_loop(report: Path, stop: threading.Event) -> int:
    from customer360.pipeline.loop import micro_batches
    from customer360.pipeline.microbatch import MicroBatch

    settings = load_settings()
    with MicroBatch(settings) as batch, report.open("a", buffering=1) as out:
        out.write(json.dumps({"ready_at": time.time()}) + "\n")
        for looped in micro_batches(batch, stop, IDLE_PAUSE_S):
            if looped.error is not None:
                raise RuntimeError(f"micro-batch {looped.number} raised {looped.error}")
            if looped.did_something:
                record = batch_record(looped.result, looped.started_at, looped.ended_at)
                out.write(json.dumps(record) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, required=True, help="JSON lines, one per batch")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return run_loop(args.report, stop)


if __name__ == "__main__":
    raise SystemExit(main())
