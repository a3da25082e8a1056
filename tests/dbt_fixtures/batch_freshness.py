"""How fresh the micro-batches keep the data, without Dagster or the bench's probes.

    C360_* of a seeded warehouse (e.g. `c360 services up`, `c360 seed --customers 100000
    --days 33`, `c360 run-once` until caught up), then:
    python -m tests.dbt_fixtures.batch_freshness --seconds 40 --rate 1000

Runs micro-batches back to back, as the stream run does, while `c360 stream --rate` produces.
A weblog event's freshness is the end of the first batch whose build holds its time
(`max(event_at)` of staging.stg_weblogs after each batch): events between two batches' maxima
became visible when the second ended. Prints p50/p95 and the batches' split, with the load.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from customer360.config import load_settings
from customer360.pipeline.microbatch import MicroBatch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="seconds of batches")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s of `c360 stream`")
    args = parser.parse_args(argv)
    log: list[tuple[float, float | None]] = []
    batches: list[tuple[float, int, float, float, float]] = []
    with MicroBatch(load_settings(), data_tests_every_s=None) as batch:
        for _ in range(3):  # warm: dbt builds until the replay has agreed statements
            batch.run(data_tests=False)
        stream = subprocess.Popen(
            [sys.executable, "-m", "customer360.cli", "stream", "--rate", str(args.rate),
             "--duration", str(args.seconds + 15), "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(8)
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            began = time.time()
            result = batch.run(data_tests=False)
            ended = time.time()
            (newest,) = batch.con.execute(
                "select epoch(max(event_at)) from staging.stg_weblogs"
            ).fetchone()
            log.append((ended, newest))
            if result.records:
                batches.append(
                    (ended - began, result.records, result.extract_seconds, result.dbt_seconds,
                     result.publish_seconds)
                )  # fmt: skip
            else:
                time.sleep(0.1)
        stream.terminate()
        stream.wait()
    fresh = []
    for (_, older), (ended, newer) in zip(log, log[1:], strict=False):
        if older is None or newer is None or newer <= older or older < log[0][0] - 2:
            continue
        steps = int((newer - older) * 100)
        fresh += [ended - (older + (i + 0.5) / 100) for i in range(steps)]
    fresh = sorted(fresh[len(fresh) // 5 :])  # the first batches still catch up

    def median(i: int) -> float:
        return statistics.median(b[i] for b in batches)

    with open("/proc/loadavg") as load:
        load_avg = load.read().split()[:3]
    print(
        f"freshness p50 {fresh[len(fresh) // 2]:.2f} s, p95 {fresh[int(len(fresh) * 0.95)]:.2f} s;"
        f" {len(batches)} batches, p50 {median(0):.2f} s ({median(1):.0f} records: extract "
        f"{median(2):.2f}, build {median(3):.2f}, publish {median(4):.2f}); load {load_avg}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
