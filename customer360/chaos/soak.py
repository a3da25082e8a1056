"""`run_chaos`: stream, break things at random moments, drain, then prove nothing is wrong."""

from __future__ import annotations

import logging
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from customer360.chaos import faults as f
from customer360.chaos.verify import Findings, check_oracle, check_raw, read_log
from customer360.config import Settings

log = logging.getLogger(__name__)

FAULT_KINDS = (
    "microbatch_kill",
    "kafka_restart",
    "mongo_restart",
    "serving_kill",
    "bad_records",
    "customer_churn",
)


@dataclass
class FaultRecord:
    kind: str
    at: float  # when it was injected (time.time())
    back_at: float  # when the injection itself finished (service back up, process restarted)
    detail: str = ""
    recovered_at: float | None = None
    max_staleness_s: float | None = None

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered_at is None else self.recovered_at - self.at


@dataclass
class ChaosConfig:
    duration_s: float = 600.0
    faults_per_kind: int = 5
    rate: float = 200.0
    customers: int = 300
    history_days: int = 30
    bad_share: float = 0.01
    seed: int = 7
    serving: bool = True
    drain_timeout_s: float = 300.0


@dataclass
class ChaosReport:
    config: ChaosConfig
    seconds: float = 0.0
    events: int = 0
    stream_summary: str = ""
    faults: list[FaultRecord] = field(default_factory=list)
    findings: Findings = field(default_factory=Findings)
    serving_checked: str = "not checked"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        unrecovered = [x for x in self.faults if x.recovered_at is None]
        return self.findings.ok and not unrecovered

    def lines(self) -> list[str]:
        by_kind = Counter(x.kind for x in self.faults)
        out = [
            f"duration: {self.seconds:.0f} s (stream {self.config.duration_s:.0f} s at "
            f"{self.config.rate:g} events/s)",
            f"events: {self.events}",
            "faults injected: " + ", ".join(f"{k} {by_kind.get(k, 0)}" for k in FAULT_KINDS),
        ]
        stale = [x.max_staleness_s for x in self.faults if x.max_staleness_s is not None]
        out.append(f"max freshness seen during faults: {max(stale):.1f} s" if stale else
                   "max freshness seen during faults: n/a")  # fmt: skip
        out.append("time to recover after each fault:")
        for x in self.faults:
            recovery = "NOT RECOVERED" if x.recovery_s is None else f"{x.recovery_s:5.1f} s"
            staleness = (
                "" if x.max_staleness_s is None else f", freshness {x.max_staleness_s:.1f} s"
            )
            out.append(
                f"  +{x.at - self.faults[0].at if self.faults else 0:6.1f} s {x.kind:<16} "
                f"{recovery} (injection {x.back_at - x.at:.1f} s{staleness}) {x.detail}"
            )
        for kind in FAULT_KINDS:
            times = [x.recovery_s for x in self.faults if x.kind == kind and x.recovery_s]
            if times:
                out.append(f"  {kind:<16} recovery median {statistics.median(times):.1f} s, "
                           f"max {max(times):.1f} s")  # fmt: skip
        out.append("checked: " + ", ".join(f"{k} {v}" for k, v in self.findings.checked.items()))
        out.append(f"serving: {self.serving_checked}")
        out += [f"note: {n}" for n in self.notes]
        out += [f"  {e}" for e in self.findings.examples[:20]]
        out += [
            f"lost: {self.findings.lost}",
            f"duplicates: {self.findings.duplicates}",
            f"mismatches: {self.findings.mismatches}",
        ]
        return out


def _schedule(config: ChaosConfig, kinds: list[str], rng: random.Random) -> list[tuple[float, str]]:
    """Random moments in [10 %, 85 %] of the run for every fault, in order."""
    plan = [k for k in kinds for _ in range(config.faults_per_kind)]
    rng.shuffle(plan)
    moments = sorted(rng.uniform(0.1, 0.85) * config.duration_s for _ in plan)
    return list(zip(moments, plan, strict=True))


def run_chaos(
    settings: Settings, config: ChaosConfig, progress=lambda line: log.info("%s", line)
) -> ChaosReport:
    from customer360.generator.history import seed
    from customer360.generator.stream import stream
    from customer360.services.kafka import KafkaService
    from customer360.services.mongo import MongoService

    report = ChaosReport(config)
    started = time.time()
    work = settings.home.absolute() / "chaos"
    work.mkdir(parents=True, exist_ok=True)
    stream_log = work / "stream.jsonl"
    injected = f.InjectedLog(work / "injected.jsonl")
    for path in (stream_log, injected.path):
        path.unlink(missing_ok=True)
    rng = random.Random(config.seed)

    progress(f"seeding {config.customers} customers with {config.history_days} days of history")
    seed(settings, config.customers, days=config.history_days, seed=config.seed, append=True)

    kinds = list(FAULT_KINDS)
    serving = None
    if config.serving and f.ServingProcess.available():
        serving = f.ServingProcess(settings, work)
        serving.start()
    else:
        kinds.remove("serving_kill")
        report.notes.append("serving not run (no customer360.serving or --no-serving)")
    report.notes.append("micro-batches run in a plain loop process (customer360.chaos.loop), "
                        "not under Dagster; no Dagster daemon was killed")  # fmt: skip

    loop = f.LoopProcess(settings, work)
    stop = threading.Event()
    try:
        loop.start()
        summary: dict = {}

        def produce():
            try:
                summary["result"] = stream(
                    settings, config.rate, duration=None, bad_share=config.bad_share,
                    seed=config.seed, log_path=stream_log, progress=None, stop=stop,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - reported by the soak
                summary["error"] = exc
                log.exception("the stream failed")

        # The stream starts once the first batch has copied the collections and opened the
        # change streams, so every change it makes is one the pipeline must show.
        deadline = time.monotonic() + 300
        while loop.first_success_after(0) is None:
            if time.monotonic() > deadline or not loop.alive():
                raise RuntimeError(f"the micro-batch loop did not start; see {work}/loop-1.log")
            time.sleep(0.2)
        producer = threading.Thread(target=produce, name="chaos-stream", daemon=True)
        stream_started = time.time()
        producer.start()

        # Staleness: now minus the greatest source time the marts reflect (sampled twice a second).
        samples: list[tuple[float, float]] = []
        sampling = threading.Event()

        def sample():
            while not sampling.wait(0.5):
                as_of = [e.fields.get("as_of") for e in loop.snapshot() if e.event == "end"]
                as_of = [a for a in as_of if a]
                if as_of:
                    samples.append((time.time(), time.time() - max(as_of)))

        threading.Thread(target=sample, name="chaos-freshness", daemon=True).start()

        def inject(kind: str) -> FaultRecord:
            at = time.time()
            detail = ""
            if kind == "microbatch_kill":
                for attempt in range(20):
                    deadline = time.monotonic() + 60
                    while not loop.in_flight() and time.monotonic() < deadline:
                        time.sleep(0.01)
                    time.sleep(rng.uniform(0, min(2.0, loop.median_batch_seconds())))
                    if loop.in_flight():
                        at = time.time()
                        loop.kill()
                        detail = f"SIGKILL mid-batch (attempt {attempt + 1})"
                        break
                else:
                    at = time.time()
                    loop.kill()
                    detail = "SIGKILL (no batch caught in flight)"
                loop.start()
            elif kind == "kafka_restart":
                service = KafkaService(settings)
                service.stop()
                time.sleep(rng.uniform(0.5, 3))
                service.start()
            elif kind == "mongo_restart":
                service = MongoService(settings)
                service.stop()
                time.sleep(rng.uniform(0.2, 1.5))
                service.start()
            elif kind == "serving_kill":
                serving.kill()
                serving.start()
                deadline = time.monotonic() + 60
                while not serving.answering() and time.monotonic() < deadline:
                    time.sleep(0.1)
            elif kind == "bad_records":
                detail = f"{f.bad_burst(settings, injected, rng)} bad records"
            elif kind == "customer_churn":
                changed = f.churn_customers(settings, stream_log, injected, rng)
                detail = f"{changed} customers changed"
            return FaultRecord(kind, at, time.time(), detail)

        try:
            for moment, kind in _schedule(config, kinds, rng):
                wait = stream_started + moment - time.time()
                if wait > 0:
                    time.sleep(wait)
                if "error" in summary:
                    raise RuntimeError(f"the stream failed: {summary['error']}")
                record = inject(kind)
                report.faults.append(record)
                progress(f"fault {len(report.faults)}: {kind} {record.detail}")
            remaining = stream_started + config.duration_s - time.time()
            if remaining > 0:
                time.sleep(remaining)
        finally:
            stop.set()
            producer.join(120)
        if "error" in summary:
            raise RuntimeError(f"the stream failed: {summary['error']}")
        result = summary["result"]
        report.events = result.events
        report.stream_summary = result.describe()
        stopped_at = time.time()
        progress(f"stream stopped after {result.events} events; draining")

        # Drain: two successful batches in a row that began after the stream stopped land nothing.
        deadline = time.monotonic() + config.drain_timeout_s
        while time.monotonic() < deadline:
            if not loop.alive():
                loop.start()
            ends = [e for e in loop.snapshot() if e.event == "end" and e.at > stopped_at + 1]
            if len(ends) >= 2 and all(e.fields["success"] and not e.fields["records"]
                                      and not e.fields["built"] for e in ends[-2:]):  # fmt: skip
                break
            time.sleep(0.5)
        else:
            report.notes.append(f"the pipeline did not drain within {config.drain_timeout_s:.0f} s")
        sampling.set()
        drained_at = time.time()
        loop.stop()

        for record in report.faults:
            if record.kind == "serving_kill":
                record.recovered_at = record.back_at
            else:
                record.recovered_at = loop.first_success_after(record.back_at)
            until = record.recovered_at or drained_at
            seen = [s for t, s in samples if record.at <= t <= until]
            record.max_staleness_s = max(seen) if seen else None

        progress("verifying raw, the full refresh, the oracle and serving")
        report.findings = verify(settings, stream_log, injected.path, serving, report)
        if serving is not None:
            serving.stop()
        report.seconds = time.time() - started
        return report

    finally:  # never leave a child process behind, even when the soak fails
        stop.set()
        loop.stop(timeout=30)
        if serving is not None:
            serving.stop()


def verify(settings: Settings, stream_log: Path, injected_log: Path, serving, report) -> Findings:
    from customer360.chaos.oracle import read_sources
    from customer360.pipeline.microbatch import MicroBatch
    from customer360.pipeline.reconcile import reconcile

    findings = Findings()
    data = read_sources(settings)
    entries = read_log(stream_log) + read_log(injected_log)
    with MicroBatch(settings) as batch:
        findings.merge(check_raw(batch.con, settings, data, entries))
        rebuilt = reconcile(batch)
        if rebuilt.dbt is None or not rebuilt.dbt.success:
            findings.add("mismatches", f"the full refresh failed: {rebuilt.summary_lines()}")
        for mart, comparison in rebuilt.marts.items():
            findings.checked[f"full refresh: {mart} rows"] = comparison.live_rows
            if not comparison.equal:
                findings.add(
                    "mismatches",
                    f"full refresh differs for {mart}: {comparison.only_live} rows only live, "
                    f"{comparison.only_rebuilt} only rebuilt",
                    comparison.only_live + comparison.only_rebuilt,
                )
        findings.merge(check_oracle(batch.con, data))
    if serving is not None:
        from customer360.chaos.verify import check_serving

        deleted = {
            e["id"] for e in entries
            if e.get("source") == "users" and e.get("op") == "delete"
            and isinstance(e.get("id"), int)
        }  # fmt: skip
        serving_findings, report.serving_checked = check_serving(settings, data, serving, deleted)
        findings.merge(serving_findings)
    return findings
