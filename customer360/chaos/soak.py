"""`run_chaos`: stream, break things at random moments, drain, then prove nothing is wrong."""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import random
import secrets
import statistics
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from customer360.chaos import faults as f
from customer360.chaos.freshness import (
    Staleness,
    by_source_text,
    sample_serving,
    worst,
    worst_by_source,
)
from customer360.chaos.runs import RunTally, tally_runs
from customer360.chaos.verify import Findings, check_oracle, check_raw, read_log
from customer360.config import Settings

log = logging.getLogger(__name__)

MODES = ("dagster", "loop")
# The process kills of each mode (`pipeline.kill_kinds`): microbatch_kill is the SIGKILL of the
# process doing micro-batches, mid-batch (the loop process, or the Dagster stream run's worker);
# daemon_kill the SIGKILL of the dagster-daemon.
FAULT_KINDS_BY_MODE = {
    "loop": ("microbatch_kill",),
    "dagster": ("microbatch_kill", "daemon_kill"),
}
COMMON_FAULT_KINDS = (
    "kafka_restart",
    "mongo_restart",
    "serving_kill",
    "bad_records",
    "customer_churn",
)
FAULT_KINDS = FAULT_KINDS_BY_MODE["loop"] + COMMON_FAULT_KINDS  # loop mode's, as before
MAX_STREAM_CRASHES = 10
# A fault that could not happen (FaultNotInjected) is tried again this long after, unless that
# is past this share of the stream's duration (the faults' schedule ends at 85 %: `_schedule`).
RETRY_AFTER_S = 15.0
LAST_RETRY_SHARE = 0.95
FIRST_BATCH_TIMEOUT_S = 600


def fault_kinds(mode: str) -> tuple[str, ...]:
    return FAULT_KINDS_BY_MODE[mode] + COMMON_FAULT_KINDS


@dataclass
class FaultRecord:
    kind: str
    at: float  # when it was injected (time.time())
    back_at: float  # when the injection itself finished (service back up, process restarted)
    detail: str = ""
    recovered_at: float | None = None
    max_staleness_s: float | None = None  # now minus the copy's data_as_of (all sources)
    # The same per source (freshness.py): a Kafka outage shows here while MongoDB moves on.
    max_staleness_by_source: dict[str, float] = field(default_factory=dict)
    process: str = ""  # the process a kill killed (`runs.BatchRun.process`); "" for other kinds

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
    seed: int | None = None  # None: a fresh random seed per run (printed in the report)
    serving: bool = True
    drain_timeout_s: float = 300.0
    mode: str = "dagster"


def derive_seed(seed: int, purpose: str) -> int:
    """An independent seed for one purpose (history, stream, faults) from the run's seed.

    The history and the stream must not share a seed: both draw event and email ids from
    `random.Random(seed)`, so equal seeds replay the same ids (the cause of a failed soak).
    """
    return int.from_bytes(hashlib.sha256(f"{seed}/{purpose}".encode()).digest()[:8], "big")


@dataclass
class ChaosReport:
    config: ChaosConfig
    seed: int = 0
    run: str = ""
    seconds: float = 0.0
    events: int = 0
    stream_summary: str = ""
    faults: list[FaultRecord] = field(default_factory=list)  # the faults that happened
    planned: Counter = field(default_factory=Counter)  # kind -> faults scheduled
    # Attempts at a fault that could not happen (nothing to kill), each tried again later.
    not_injected: list[FaultRecord] = field(default_factory=list)
    findings: Findings = field(default_factory=Findings)
    # Every finished micro-batch run: succeeded, failed by an injected fault, failed unexplained.
    batch_runs: RunTally = field(default_factory=RunTally)
    serving_checked: str = "not checked"
    pipeline_summary: list[str] = field(default_factory=list)
    drained: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def kinds(self) -> tuple[str, ...]:
        return fault_kinds(self.config.mode)

    @property
    def never_injected(self) -> list[str]:
        """The planned kinds of fault none of whose attempts happened: the soak did not test
        what it was meant to."""
        injected = Counter(x.kind for x in self.faults)
        return [kind for kind in self.planned if not injected[kind]]

    @property
    def ok(self) -> bool:
        unrecovered = [x for x in self.faults if x.recovered_at is None]
        failed = self.batch_runs.unexplained
        return (
            self.findings.ok and not unrecovered and self.drained and not failed
            and not self.never_injected
        )  # fmt: skip

    @property
    def origin(self) -> float:
        """Report times are seconds after the first fault."""
        return self.faults[0].at if self.faults else 0.0

    def run_lines(self) -> list[str]:
        """The run counts; the failed runs each fault explains; every unexplained failure."""
        out = [self.batch_runs.summary()]
        for fault in self.faults:
            failed = [x.run for x in self.batch_runs.by_faults if x.fault is fault]
            if failed:
                ids = ", ".join(_short_id(r.run_id) for r in failed[:6])
                more = f" and {len(failed) - 6} more" if len(failed) > 6 else ""
                out.append(
                    f"  +{fault.at - self.origin:6.1f} s {fault.kind:<16} explains "
                    f"{len(failed)} failed run(s): {ids}{more}; {failed[0].message[:200]}"
                )
        for failed in self.batch_runs.unexplained:
            run = failed.run
            began = time.strftime("%H:%M:%S", time.localtime(run.began))
            out.append(
                f"  FAILED UNEXPLAINED: run {run.run_id} began {began} "
                f"(+{run.began - self.origin:.1f} s): {run.message[:1000]}"
            )
        return out

    def not_injected_lines(self) -> list[str]:
        """Each attempt at a fault that could not happen, and each planned kind never
        injected (what makes the soak fail)."""
        out = [
            f"  not injected at +{x.at - self.origin:.1f} s: {x.kind}: {x.detail}"
            for x in self.not_injected
        ]
        for kind in self.never_injected:
            tried = sum(1 for x in self.not_injected if x.kind == kind)
            out.append(
                f"NEVER INJECTED: {kind} ({self.planned[kind]} planned, {tried} attempts could "
                "not happen): the soak did not test it"
            )
        return out

    def result(self) -> dict:
        """The report as JSON-ready data (written to the run's folder as result.json)."""
        runs = self.batch_runs

        def failed(x) -> dict:
            explained = None if x.fault is None else {"kind": x.fault.kind, "at": x.fault.at}
            return asdict(x.run) | {"explained_by": explained}

        return {
            "run": self.run, "seed": self.seed, "ok": self.ok, "config": asdict(self.config),
            "seconds": self.seconds, "events": self.events, "drained": self.drained,
            "faults": [asdict(x) | {"recovery_s": x.recovery_s} for x in self.faults],
            "planned": dict(self.planned), "never_injected": self.never_injected,
            "not_injected": [asdict(x) for x in self.not_injected],
            "runs": {
                "succeeded": runs.succeeded,
                "failed_by_injected_faults": len(runs.by_faults),
                "failed_unexplained": len(runs.unexplained),
                "failed": [failed(x) for x in runs.unexplained + runs.by_faults],
            },
            "lost": self.findings.lost, "duplicates": self.findings.duplicates,
            "mismatches": self.findings.mismatches, "checked": dict(self.findings.checked),
            "examples": self.findings.examples, "serving": self.serving_checked,
            "pipeline": self.pipeline_summary, "notes": self.notes,
        }  # fmt: skip

    def lines(self) -> list[str]:
        by_kind = Counter(x.kind for x in self.faults)
        out = [
            f"run: {self.run} (mode {self.config.mode}, seed {self.seed})",
            f"duration: {self.seconds:.0f} s (stream {self.config.duration_s:.0f} s at "
            f"{self.config.rate:g} events/s)",
            f"events: {self.events}",
            "faults injected: " + ", ".join(f"{k} {by_kind.get(k, 0)}" for k in self.kinds),
        ]
        out += self.not_injected_lines()
        stale = [x.max_staleness_s for x in self.faults if x.max_staleness_s is not None]
        out.append(f"max freshness seen during faults: {max(stale):.1f} s" if stale else
                   "max freshness seen during faults: n/a")  # fmt: skip
        if by_source := worst_by_source(x.max_staleness_by_source for x in self.faults):
            out.append(f"  by source (s): {by_source_text(by_source)}")
        out.append("time to recover after each fault:")
        for x in self.faults:
            recovery = "NOT RECOVERED" if x.recovery_s is None else f"{x.recovery_s:5.1f} s"
            staleness = (
                "" if x.max_staleness_s is None else f", freshness {x.max_staleness_s:.1f} s"
            )
            if x.max_staleness_by_source:
                stalest, seconds = max(x.max_staleness_by_source.items(), key=lambda i: i[1])
                staleness += f", {stalest} {seconds:.1f} s"
            out.append(
                f"  +{x.at - self.origin:6.1f} s {x.kind:<16} "
                f"{recovery} (injection {x.back_at - x.at:.1f} s{staleness}) {x.detail}"
            )
        for kind in self.kinds:
            of_kind = [x for x in self.faults if x.kind == kind]
            times = [x.recovery_s for x in of_kind if x.recovery_s]
            if times:
                out.append(f"  {kind:<16} recovery median {statistics.median(times):.1f} s, "
                           f"max {max(times):.1f} s")  # fmt: skip
            if by_source := worst_by_source(x.max_staleness_by_source for x in of_kind):
                out.append(f"  {kind:<16} worst freshness by source (s): "
                           f"{by_source_text(by_source)}")  # fmt: skip
        out += self.pipeline_summary
        out += self.run_lines()
        if not self.drained:
            out.append("NOT DRAINED: the pipeline did not catch up after the stream stopped")
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


def _short_id(run_id: str) -> str:
    """A Dagster run id's first 8 characters (as Dagster's UI shows it); a loop batch's whole."""
    return run_id[:8] if len(run_id) == 36 else run_id


def _schedule(config: ChaosConfig, kinds: list[str], rng: random.Random) -> list[tuple[float, str]]:
    """Random moments in [10 %, 85 %] of the run for every fault, in order."""
    plan = [k for k in kinds for _ in range(config.faults_per_kind)]
    rng.shuffle(plan)
    moments = sorted(rng.uniform(0.1, 0.85) * config.duration_s for _ in plan)
    return list(zip(moments, plan, strict=True))


def inject_on_schedule(
    schedule: list[tuple[float, str]], inject, report: ChaosReport, started: float,
    duration_s: float, progress, stream_failed=lambda: None, clock=time,
) -> None:  # fmt: skip
    """Inject each fault of `schedule` ((seconds after `started`, kind)) at its moment into
    `report.faults`. One that could not happen (inject raises FaultNotInjected: no stream run
    alive to kill) is not counted as injected: the attempt goes to `report.not_injected` and
    the fault is tried again RETRY_AFTER_S later while the stream runs, so that a kind planned
    is tested (or the report says it never was)."""
    plan = list(schedule)
    heapq.heapify(plan)
    report.planned.update(kind for _, kind in plan)
    while plan:
        moment, kind = heapq.heappop(plan)
        wait = started + moment - clock.time()
        if wait > 0:
            clock.sleep(wait)
        stream_failed()
        try:
            record = inject(kind)
        except f.FaultNotInjected as why:
            now = clock.time()
            report.not_injected.append(FaultRecord(kind, now, now, str(why)))
            retry = now - started + RETRY_AFTER_S
            if retry <= duration_s * LAST_RETRY_SHARE:
                heapq.heappush(plan, (retry, kind))
                progress(f"fault {kind} not injected ({why}); trying again at +{retry:.0f} s")
            else:
                progress(f"fault {kind} not injected ({why}); no time left to try again")
            continue
        report.faults.append(record)
        progress(f"fault {len(report.faults)}: {kind} {record.detail}")


def run_settings(settings: Settings, run: str, work: Path) -> Settings:
    """The settings of one soak: its own topics, Mongo database, warehouse, serving copy and
    home (dbt target, DAGSTER_HOME) under its folder; the services stay those of `settings`."""
    return settings.with_overrides(
        kafka_topic_prefix=f"chaos-{run}-",
        mongo_db=f"chaos_{run.replace('-', '_')}",
        warehouse=work / "warehouse.duckdb",
        serving_db=work / "serving.duckdb",
        home=work,
        kafka_jars=settings.kafka_jars_dir.absolute(),
    )


def run_chaos(
    settings: Settings, config: ChaosConfig, progress=lambda line: log.info("%s", line)
) -> ChaosReport:
    """Soak the pipeline of a fresh run (new topics, database, warehouse) under faults.

    `settings` names the services (Kafka, MongoDB, C360_HOME with their pid files), which the
    soak restarts; everything the pipeline reads or writes is the run's own (`run_settings`), so
    no earlier run's records can mix in.
    """
    from customer360.chaos.pipelines import DagsterPipeline, LoopPipeline
    from customer360.generator.history import seed
    from customer360.generator.stream import stream
    from customer360.services.kafka import KafkaService
    from customer360.services.mongo import MongoService

    if config.mode not in MODES:
        raise ValueError(f"unknown mode {config.mode!r}: one of {', '.join(MODES)}")
    run_seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    run = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    report = ChaosReport(config, seed=run_seed, run=run)
    started = time.time()
    work = settings.home.absolute() / "chaos" / run
    work.mkdir(parents=True)
    services = settings
    settings = run_settings(services, run, work)
    stream_log = work / "stream.jsonl"
    injected = f.InjectedLog(work / "injected.jsonl")
    rng = random.Random(derive_seed(run_seed, "faults"))
    progress(f"chaos run {run}: mode {config.mode}, seed {run_seed}, folder {work}, topics "
             f"{settings.topic('*')}, Mongo database {settings.mongo_db}")  # fmt: skip

    progress(f"seeding {config.customers} customers with {config.history_days} days of history")
    # A new database: seed refuses one that holds users (no earlier run's data).
    seed(settings, config.customers, days=config.history_days,
         seed=derive_seed(run_seed, "history"))  # fmt: skip

    kinds = list(fault_kinds(config.mode))
    serving = None
    if config.serving and f.ServingProcess.available():
        serving = f.ServingProcess(settings, work)
        serving.start()
    else:
        kinds.remove("serving_kill")
        report.notes.append("serving not run (no customer360.serving or --no-serving)")

    pipeline = (DagsterPipeline if config.mode == "dagster" else LoopPipeline)(settings, work)
    report.notes.append(f"pipeline: {pipeline.description}")
    stop = threading.Event()
    try:
        pipeline.start()
        summary: dict = {}
        results: list = []  # StreamSummary of each stream incarnation
        crashes: list[str] = []

        def produce():
            """The stream until `stop`; a stream that crashes (the generator gives up on a
            source that stays down longer than its timeouts) is started again with a seed of
            its own, so the producers keep producing as real ones would."""
            incarnation = 0
            while not stop.is_set():
                incarnation += 1
                purpose = "stream" if incarnation == 1 else f"stream/{incarnation}"
                try:
                    results.append(stream(
                        settings, config.rate, duration=None, bad_share=config.bad_share,
                        seed=derive_seed(run_seed, purpose), log_path=stream_log,
                        progress=None, stop=stop,
                    ))  # fmt: skip
                except Exception as exc:  # noqa: BLE001 - reported by the soak
                    log.warning("the stream crashed; starting it again", exc_info=True)
                    crashes.append(f"{type(exc).__name__}: {exc}"[:300])
                    if len(crashes) >= MAX_STREAM_CRASHES:
                        summary["error"] = exc
                        return
                    stop.wait(1.0)

        # The stream starts once the first batch has copied the collections and opened the
        # change streams, so every change it makes is one the pipeline must show.
        # (The first batch builds every model from scratch: ~5 min in Dagster mode at load 15+.)
        deadline = time.monotonic() + FIRST_BATCH_TIMEOUT_S
        while not pipeline.started():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no micro-batch succeeded within {FIRST_BATCH_TIMEOUT_S} s; see {work}"
                )
            time.sleep(0.2)
        progress("first micro-batch done; streaming and injecting faults")
        producer = threading.Thread(target=produce, name="chaos-stream", daemon=True)
        stream_started = time.time()
        producer.start()

        # Freshness: now minus the newest source times the published serving copy reflects
        # (what readers see), over all sources and per source (freshness.py), twice a second.
        samples: list[Staleness] = []
        sampling = threading.Event()

        def sample():
            while not sampling.wait(0.5):
                staleness = sample_serving(settings.serving_path, time.time())
                if staleness is not None:
                    samples.append(staleness)

        threading.Thread(target=sample, name="chaos-freshness", daemon=True).start()

        def inject(kind: str) -> FaultRecord:
            at = time.time()
            detail = ""
            if kind in pipeline.kill_kinds:
                at, back_at, detail, process = pipeline.kill(kind, rng)
                return FaultRecord(kind, at, back_at, detail, process=process)
            if kind == "kafka_restart":
                service = KafkaService(services)
                service.stop()
                time.sleep(rng.uniform(0.5, 3))
                service.start()
            elif kind == "mongo_restart":
                service = MongoService(services)
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

        def stream_failed() -> None:
            if "error" in summary:
                raise RuntimeError(f"the stream failed: {summary['error']}")

        try:
            inject_on_schedule(
                _schedule(config, kinds, rng), inject, report, stream_started,
                config.duration_s, progress, stream_failed,
            )  # fmt: skip
            remaining = stream_started + config.duration_s - time.time()
            if remaining > 0:
                time.sleep(remaining)
        finally:
            stop.set()
            producer.join(120)
        if "error" in summary:
            raise RuntimeError(f"the stream failed: {summary['error']}")
        report.events = sum(r.events for r in results)
        report.stream_summary = "; ".join(r.describe() for r in results)
        if crashes:
            logged = sum(1 for _ in stream_log.open(encoding="utf-8"))
            report.notes.append(
                f"the stream crashed {len(crashes)} time(s) and was started again (events of a "
                f"crashed stream are not counted above; the producers' log holds {logged} "
                f"records): {'; '.join(crashes)}"
            )
        progress(f"stream stopped after {report.events} events; draining")
        stopped_at = time.time()

        deadline = time.monotonic() + config.drain_timeout_s
        while time.monotonic() < deadline:
            pipeline.ensure_running()
            if pipeline.drained(stopped_at):
                break
            time.sleep(0.5)
        else:
            report.drained = False
            report.notes.append(f"the pipeline did not drain within {config.drain_timeout_s:.0f} s")
        sampling.set()
        drained_at = time.time()

        for record in report.faults:
            if record.kind == "serving_kill":
                record.recovered_at = record.back_at
            else:
                record.recovered_at = pipeline.first_success_after(record.back_at)
            until = record.recovered_at or drained_at
            if (during := worst(samples, record.at, until)) is not None:
                record.max_staleness_s = during.overall
                record.max_staleness_by_source = during.by_source
        # Stopped before the runs are judged: the warehouse has one writer (the checks below
        # open it), and Dagster's stream run ends CANCELED, as on `c360 up`'s Ctrl-C.
        pipeline.stop()
        report.pipeline_summary = pipeline.summary()
        report.batch_runs = tally_runs(pipeline.batch_runs(), report.faults)
        if stuck := pipeline.stuck:
            report.drained = False
            report.notes.append(f"runs that did not end when the pipeline stopped: {stuck}")

        progress("verifying raw, the full refresh, the oracle and serving")
        report.findings = verify(settings, stream_log, injected.path, serving, report)
        if serving is not None:
            serving.stop()
        report.seconds = time.time() - started
        result = work / "result.json"
        result.write_text(json.dumps(report.result(), indent=2, default=str) + "\n")
        report.notes.append(f"result: {result}")
        return report

    finally:  # never leave a child process behind, even when the soak fails
        stop.set()
        pipeline.stop(timeout=30)
        if serving is not None:
            serving.stop()
        from customer360.pipeline.probe import close_probers

        close_probers()


def verify(settings: Settings, stream_log: Path, injected_log: Path, serving, report) -> Findings:
    from customer360.chaos.identity_oracle import read_user_changes
    from customer360.chaos.oracle import read_sources
    from customer360.pipeline.microbatch import MicroBatch
    from customer360.pipeline.reconcile import reconcile

    findings = Findings()
    data = read_sources(settings)
    entries = read_log(stream_log) + read_log(injected_log)
    with MicroBatch(settings) as batch:
        # The history of users changes (MongoDB's change times) the oracle's identity rules
        # need: read from raw.users, which check_raw proves holds every change once.
        data.user_changes = read_user_changes(batch.con)
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
