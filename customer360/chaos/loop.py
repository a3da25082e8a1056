"""The micro-batch loop the chaos soak runs (and SIGKILLs): `python -m customer360.chaos.loop`.

Runs `MicroBatch.run()` back to back and prints one JSON line per step on stdout, flushed, so the
soak knows when a batch is in flight (`begin`), how it ended (`end`: success, records, errors)
and how fresh the marts are (`as_of`: the greatest source time `customer_360_base` reflects).
Each batch publishes the serving copy itself (`MicroBatch.run()`). SIGTERM stops it between
batches.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime

from customer360.config import load_settings


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, "at": time.time(), **fields}, default=str), flush=True)


def marts_as_of(con) -> float | None:
    try:
        value = con.execute("select max(as_of) from marts.customer_360_base").fetchone()[0]
    except Exception:  # noqa: BLE001 - not built yet
        return None
    return value.replace(tzinfo=UTC).timestamp() if isinstance(value, datetime) else None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m customer360.chaos.loop")
    parser.add_argument(
        "--interval", type=float, default=0.2, help="pause after a batch that did nothing or failed"
    )
    parser.add_argument("--max-seconds", type=float, default=3.0, help="extract time per source")
    args = parser.parse_args(argv)

    from customer360.pipeline.loop import micro_batches
    from customer360.pipeline.microbatch import MicroBatch

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    batch = MicroBatch(load_settings(), max_seconds=args.max_seconds)
    emit("ready")

    def begin(number: int) -> None:
        emit("begin", batch=number)

    try:
        for looped in micro_batches(batch, stop, args.interval, on_begin=begin):
            result = looped.result
            emit(
                "end",
                batch=looped.number,
                seconds=looped.seconds,
                success=result is not None and result.success,
                records=result.records if result else 0,
                built=bool(result and result.dbt_sources),
                errors=(result.extract_errors if result else {"batch": looped.error})
                or ([] if result is None or result.dbt is None else result.dbt.failures),
                as_of=marts_as_of(batch.con),
            )
    finally:
        batch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
