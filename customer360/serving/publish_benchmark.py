"""Publish benchmark (not a test): the serving copy's publish time per ~1,000-event micro-batch.

    python -m customer360.serving.publish_benchmark --customers 100000 --out /tmp/c360-publish

starts Kafka and MongoDB of its own under --out, seeds a history (`--days`), loads it with
micro-batches, then repeats `--batches` times: the generator's stream produces `--events` events
(all five sources, the usual mix), one micro-batch lands and builds them and publishes the
serving copy as the pipeline does (`MicroBatch.run()`'s steps), and then, on the same state,
a full copy of every mart is published to another path (`force=True`: what every publication
cost before the slots). A reader in another process keeps the serving copy open meanwhile,
polling it every `--reader-interval` seconds as the bench's probes do, so publications meet
held slots. Prints p50 / p95 of both, how each publication was made, and the load average
(the machine may be shared: compare the two, measured under the same load, and the CPU time
each took, which depends much less on the load than the wall time does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from customer360.stopping import install_stop_handlers

READER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from customer360.serving.reader import ServingReader, ServingNotPublished
    reader = ServingReader(Path(sys.argv[1]))
    while True:
        try:
            with reader.session() as (copy, cur):
                cur.execute("select count(*) from customer_360").fetchone()
        except ServingNotPublished:
            pass
        time.sleep(float(sys.argv[2]))
    """
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=3, help="days of seeded history")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--events", type=int, default=1_000, help="events per micro-batch")
    parser.add_argument("--reader-interval", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/c360-publish-bench"))
    args = parser.parse_args(argv)
    # SIGTERM or SIGHUP stop the run as Ctrl-C does: through the `finally` that stops the
    # services and processes it started (else a `kill` leaves them running).
    install_stop_handlers()

    from customer360.bench.cli import bench_settings, clear_outputs
    from customer360.config import load_settings
    from customer360.generator.history import seed
    from customer360.generator.stream import stream
    from customer360.pipeline.microbatch import MicroBatch
    from customer360.services import services_down, services_up
    from customer360.serving.publish import publish_serving_copy

    args.out.mkdir(parents=True, exist_ok=True)
    clear_outputs(args.out)
    for leftover in args.out.glob("*.slots"):
        for f in leftover.iterdir():
            f.unlink()
    settings = bench_settings(load_settings(), args.out, own_services=True)
    full = settings.with_overrides(serving_db=args.out / "full" / "serving.duckdb")
    for state in services_up(settings):
        print(state.line(), flush=True)
    reader = None
    try:
        started = time.monotonic()
        summary = seed(settings, customers=args.customers, days=args.days, seed=42)
        print(f"seed: {summary.records} events in {time.monotonic() - started:.0f} s", flush=True)
        with MicroBatch(settings, data_tests_every_s=None) as batch:
            started = time.monotonic()
            while batch.run().records:
                pass
            print(f"history loaded in {time.monotonic() - started:.0f} s", flush=True)
            reader = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    READER,
                    str(settings.serving_path),
                    str(args.reader_interval),
                ]
            )
            rows = []
            for number in range(args.batches):
                stream(settings, rate=float(args.events), duration=1.0, seed=100 + number,
                       progress=None)  # fmt: skip
                # MicroBatch.run()'s steps, with the publication's CPU time (all threads of
                # this process) beside its wall time: much less sensitive to a shared machine.
                extracts, errors = batch.extract()
                assert not errors, errors
                built = batch.build_models(batch.sources_to_build())
                assert built is None or built.success, built.failures
                cpu = time.process_time()
                serving = batch.publish()
                cpu = time.process_time() - cpu
                copy_cpu = time.process_time()
                copy = publish_serving_copy(batch.con, full, force=True)
                copy_cpu = time.process_time() - copy_cpu
                row = {
                    "records": sum(r.records for r in extracts.values()),
                    "publish_s": serving.seconds if serving else 0.0,
                    "publish_cpu_s": cpu,
                    "full_copy_cpu_s": copy_cpu,
                    "mode": serving.mode if serving and serving.published else "unchanged",
                    "reason": serving.reason if serving else "",
                    "customers_replaced": serving.customers_replaced if serving else 0,
                    "bytes": serving.bytes if serving else 0,
                    "full_copy_s": copy.seconds,
                    "load": os.getloadavg()[0],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        if reader is not None:
            reader.kill()
        services_down(settings)
    steady = rows[1:]  # the first publication after the history may be a full one
    incremental = [r["publish_s"] for r in steady]
    copies = [r["full_copy_s"] for r in steady]
    incremental_cpu = [r["publish_cpu_s"] for r in steady]
    copies_cpu = [r["full_copy_cpu_s"] for r in steady]
    modes = statistics.multimode([r["mode"] for r in steady])
    print(
        f"\n{len(steady)} micro-batches of {statistics.median([r['records'] for r in steady]):.0f}"
        f" records (median), {args.customers} customers; modes "
        + ", ".join(
            f"{m} {sum(1 for r in steady if r['mode'] == m)}"
            for m in sorted({r["mode"] for r in steady})
        )
        + f" (most: {modes[0]}); customers replaced median "
        f"{statistics.median([r['customers_replaced'] for r in steady]):.0f}"
    )
    for name, wall, cpu in (
        ("publish (slots)", incremental, incremental_cpu),
        ("full copy", copies, copies_cpu),
    ):
        print(
            f"{name:<17} p50 {percentile(wall, 50) * 1000:.0f} ms,"
            f" p95 {percentile(wall, 95) * 1000:.0f} ms; CPU time p50"
            f" {percentile(cpu, 50) * 1000:.0f} ms, p95 {percentile(cpu, 95) * 1000:.0f} ms"
        )
    loads = [r["load"] for r in steady]
    print(f"load average (1 min) during the batches: {min(loads):.2f} to {max(loads):.2f}")
    (args.out / "publish_benchmark.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
