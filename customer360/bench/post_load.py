"""The benchmark's phase after the load, with the pipeline stopped, in the bench's process:
micro-batches until the backlog is drained, and a full refresh of a copy of the warehouse."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from customer360.config import Settings


def drain(batch, max_runs: int = 500, data_tests: bool | None = None) -> list[dict]:
    """Micro-batches until one succeeds, lands nothing and has no lag left; their report lines.
    A batch that failed is never the end: a source whose extract failed has no lag to tell, so
    the others' lag of 0 says nothing of it. `data_tests` as in `MicroBatch.run` (None: when due;
    the timed phases pass False: the stream runs its data tests beside the batches, not in
    them)."""
    from customer360.bench.loop import batch_record

    done = []
    for _ in range(max_runs):
        started = time.time()
        result = batch.run(data_tests=data_tests)
        if result.extract_errors or (result.dbt is not None and not result.dbt.success):
            # A failed extract or build is retried by the next micro-batch, as in production;
            # the failures stay in the batch's line (`errors`) and in the result's notes.
            time.sleep(1)
        if result.records or result.dbt is not None:
            done.append(batch_record(result, started, time.time()))
        if result.success and not result.records and result.remaining_lag in (0, None):
            return done
    raise RuntimeError(f"the micro-batches did not catch up within {max_runs} runs")


def learn_replay(batch) -> None:
    """Warm a fresh process's micro-batch as the live stream is once it has caught up: dbt
    builds every model twice with no new data (changing nothing), so the replay has learnt
    their statements (pipeline/model_replay.py) and the batches timed after this are replayed
    as the stream's are, rather than dbt builds of a process that has not learnt them yet."""
    from extractors import SOURCES

    batch.build_models(list(SOURCES), data_tests=False)  # views too, on this process's parse
    batch.learn_unlearnt_models(batch.run(data_tests=False))


def full_refresh_on_copy(
    settings: Settings, scratch: Path, say: Callable[[str], None]
) -> tuple[dict, str | None]:
    """`dbt run --full-refresh` on a copy of the warehouse (same history, same run), in
    `scratch` (removed afterwards): its figures, and what failed if it did."""
    from customer360.pipeline.dbt_invoker import DbtInvoker

    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    copy = scratch / "warehouse.duckdb"
    shutil.copyfile(settings.warehouse, copy)
    wal = settings.warehouse.with_name(settings.warehouse.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
    invoker = DbtInvoker(settings.with_overrides(warehouse=copy, home=scratch / "home"))
    started = time.monotonic()
    invoker.manifest()
    parse = time.monotonic() - started
    say("full refresh: dbt run --full-refresh on a copy of the warehouse ...")
    result = invoker.run(["run", "--full-refresh"])
    failure = None if result.success else f"full refresh failed: {result.failures or result.error}"
    models = result.model_seconds
    shutil.rmtree(scratch, ignore_errors=True)
    return {"dbt_parse_s": parse, "dbt_run_s": result.seconds, "models_s": models}, failure
