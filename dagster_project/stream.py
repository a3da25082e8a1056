"""The micro-batch stream: one long-running Dagster run that lands and builds batch after batch.

Why one run for many batches: a run per micro-batch waits for the sensor's next tick (Dagster's
daemon ticks at most every 5 s) and for a run to launch (seconds), while a batch's own work takes
a fraction of a second to a few. Dagster's docs and issues (#19607, #26194) point to a
long-running process for such latency. So the sensor starts this run, watches its heartbeat and
starts it again when it ends or its process dies; the run keeps the extractor's connections and
dbt's parsed project warm and reports what every batch changed as asset materializations, so the
UI shows each batch within a second or two.

One writer: runs of other jobs that write the warehouse (the data tests, the nightly
reconciliation, a materialization started from the UI) carry the same writer tag and queue
behind this run; the stream sees one waiting, ends its run after the batch in hand, and the
sensor starts the stream again once they are done.
"""

import threading
import time
from collections.abc import Iterable, Iterator

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetKey,
    AssetMaterialization,
    DagsterExecutionInterruptedError,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    RunsFilter,
    in_process_executor,
    job,
    op,
)
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

from customer360.pipeline.dbt_invoker import DBT_LOCK, DbtBuildResult, others_wait_for_dbt
from customer360.pipeline.heartbeat import Heartbeat
from customer360.pipeline.microbatch import MicroBatch, MicroBatchResult
from customer360.pipeline.pacer import Pacer
from dagster_project.assets import (
    REPLAYED_METADATA,
    TRANSLATOR,
    landing_metadata,
    raw_key,
    replayed_models,
    replayed_test_checks,
    views_reflecting,
)
from dagster_project.identity import UNATTRIBUTED_VIEW, unattributed_metadata
from dagster_project.resources import MicroBatchResource

STREAM_JOB = "microbatch_stream"
# Runs with this tag write the warehouse; dagster.yaml lets one run at a time hold it.
WRITER_TAG = "c360/writer"
WRITER_TAGS = {WRITER_TAG: "warehouse"}
# With nothing new, the next batch starts after this pause (a batch with nothing new costs a
# few milliseconds: the extractors' positions are checked, nothing is built).
IDLE_PAUSE_S = 0.1
# A batch that fails (a source down, a dbt error) is tried again after a pause that doubles up to
# this; after FAIL_RUN_AFTER_S of nothing but failures the run fails, and the sensor says so.
MAX_RETRY_PAUSE_S = 30.0
FAIL_RUN_AFTER_S = 600.0
# The dbt data tests (asset checks) run this often, beside the batches (DataTests): reading every
# staged and mart table takes seconds, too much for every batch. The first run comes a minute
# after the stream starts, once the first batches have caught up.
DATA_TESTS_EVERY_S = 15 * 60.0
FIRST_DATA_TESTS_AFTER_S = 60.0
# The share of the time the data tests may take while batches go on (customer360/pipeline/pacer.py).
DATA_TESTS_SHARE = 0.25
# The data tests hold dbt while they run: they wait until the batches need dbt no more (every
# model replayed), for at most this long past their time.
DATA_TESTS_WAIT_FOR_REPLAY_S = 15 * 60.0
WAITING_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
WRITER_CHECK_EVERY_S = 1.0
# What the stream reports to Dagster, and how often it writes a round of it (EventReporter).
AssetEvent = AssetMaterialization | AssetCheckEvaluation
REPORT_EVERY_S = 5.0


def writer_waiting(instance: DagsterInstance, own_run_id: str):
    """Another run that writes the warehouse and waits for it, if any."""
    for run in instance.get_runs(RunsFilter(statuses=WAITING_STATUSES, tags=WRITER_TAGS)):
        if run.run_id != own_run_id:
            return run
    return None


def end_if_terminated(context: OpExecutionContext) -> None:
    """End the loop between two batches once the run is being terminated.

    Dagster's interrupt reaches the run worker only when the batch in progress lets it (DuckDB
    holds it during a query), and a terminated run that kept batching was seen to outlive the
    15 s `c360 dagster` gives it on stopping. Raising Dagster's interrupt here ends the run as
    CANCELED, as the interrupt itself would.
    """
    run = context.instance.get_run_by_id(context.run_id)
    if run is not None and run.status == DagsterRunStatus.CANCELING:
        context.log.info("the run is being terminated: the stream ends between two batches")
        raise DagsterExecutionInterruptedError("terminated between two micro-batches")


# What DuckDB raises in place of the KeyboardInterrupt when a SIGINT (Ctrl-C on `c360 up`, a
# run's termination) arrives during a query; the KeyboardInterrupt itself is swallowed.
DUCKDB_INTERRUPT = "Query interrupted"


def is_duckdb_interrupt(exc: BaseException) -> bool:
    return type(exc) is RuntimeError and str(exc) == DUCKDB_INTERRUPT


def dbt_events(batch: MicroBatch, result: DbtBuildResult) -> Iterator[AssetEvent]:
    """dbt's results as dagster-dbt turns them into events outside an asset step: a
    materialization per model built, a check evaluation per data test run."""
    manifest = batch.dbt.manifest_dict()
    for _, key in replayed_models(manifest, result):
        yield AssetMaterialization(key, metadata=REPLAYED_METADATA)
    yield from replayed_test_checks(manifest, result)
    for raw_event in result.events:
        message = DbtCoreCliEventMessage(raw_event=raw_event, event_history_metadata={})
        yield from message.to_default_asset_events(
            manifest=manifest, dagster_dbt_translator=TRANSLATOR, target_path=batch.dbt.target_dir
        )


def batch_events(batch: MicroBatch, result: MicroBatchResult, run_id: str) -> Iterator[AssetEvent]:
    """What a micro-batch changed, as Dagster sees it: each raw table that landed records, each
    model dbt built, and each view that reads a rebuilt model."""
    tag = {"stream_run": MetadataValue.text(run_id)}
    for source, extract in result.extracts.items():
        if extract.records or extract.quarantined:
            yield AssetMaterialization(raw_key(source), metadata=landing_metadata(extract) | tag)
    if result.dbt is None or not result.models_built:
        return
    yield from dbt_events(batch, result.dbt)
    manifest = batch.dbt.manifest_dict()
    for unique_id in views_reflecting(manifest, set(result.models_built)):
        node = manifest["nodes"][unique_id]
        metadata = {"dbt": "view: not re-created, it reads the rebuilt models"} | tag
        if node["name"] == UNATTRIBUTED_VIEW:  # identity stitching's unattributed counts
            metadata |= unattributed_metadata(batch.con)
        yield AssetMaterialization(TRANSLATOR.get_asset_key(node), metadata=metadata)


class EventReporter:
    """Writes the batches' asset events to Dagster's storage from a thread of its own.

    An event costs ~12-20 ms of CPU in the SQLite storage, quiet (SQLAlchemy compiling the
    inserts, two SQLite connections opened per event; Dagster has no public call that writes
    several), and a batch that touches every model reports ~44. Written as fast as batches came,
    that was a third of the stream's CPU under load, as much as the models' SQL (py-spy during
    `c360 bench` at 1,000 events/s). Reporting beside the batches keeps it out of their way, and
    a round of writes at most every `every_s` bounds it. The events waiting for one asset are
    merged into one (the newest, with the records of all of them), so a round is bounded by the
    number of assets and the UI is at most `every_s` plus one round of writes behind.
    """

    def __init__(self, instance: DagsterInstance, every_s: float = REPORT_EVERY_S):
        self.instance = instance
        self.every_s = every_s
        self._pending: dict[AssetKey | AssetCheckKey, AssetEvent] = {}
        self._lock = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="c360-dagster-events", daemon=True)

    def report(self, events: Iterable[AssetEvent]) -> None:
        with self._lock:
            for event in events:
                if isinstance(event, AssetCheckEvaluation):
                    self._pending[event.asset_check_key] = event
                else:
                    self._pending[event.asset_key] = merged(
                        self._pending.get(event.asset_key), event
                    )
            self._lock.notify()

    def _run(self) -> None:
        next_round = 0.0
        while True:
            with self._lock:
                while not self._closing:
                    if not self._pending:
                        self._lock.wait()
                    elif (wait := next_round - time.monotonic()) > 0:
                        self._lock.wait(wait)
                    else:
                        break
                if not self._pending:
                    return
                events, self._pending = list(self._pending.values()), {}
            next_round = time.monotonic() + self.every_s
            for event in events:
                self.instance.report_runless_asset_event(event)

    def __enter__(self) -> "EventReporter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:  # what is pending is still written
            self._closing = True
            self._lock.notify()
        self._thread.join(timeout=10)


def merged(older: AssetMaterialization | None, newer: AssetMaterialization) -> AssetMaterialization:
    """One event standing for two of the same asset: the newer, with the records of both."""
    if not isinstance(older, AssetMaterialization) or not {"records"} <= (
        older.metadata.keys() & newer.metadata.keys()
    ):
        return newer
    records = older.metadata["records"].value + newer.metadata["records"].value
    return AssetMaterialization(
        newer.asset_key,
        metadata={
            **newer.metadata,
            "records": records,
            "batches_merged": MetadataValue.int(
                older.metadata.get("batches_merged", MetadataValue.int(1)).value + 1
            ),
        },
    )


def run_data_tests(
    context: OpExecutionContext, batch: MicroBatch, pacer: Pacer | None = None
) -> list[AssetEvent]:
    """The data tests of the live warehouse (MicroBatch.run_data_tests: dbt's, or their queries
    replayed), each test's result an asset check evaluation; paced by `pacer` when given (a
    pause after each test)."""
    result = batch.run_data_tests(after_each_test=pacer.step_done if pacer else None)
    summary = f"data tests: {result.tests_summary()} in {result.seconds:.1f} s"
    how = ["their queries replayed without dbt"] if result.replayed else []
    if pacer is not None:
        how.append(f"paced to {pacer.share:.0%} of the time: {pacer.slept_s:.1f} s of pauses")
    if how:
        summary += f" ({'; '.join(how)})"
    # The tests that did not pass, one a line: those that warned too (an operator reads why).
    if result.success:
        context.log.info("\n".join([summary, *result.warnings]))
    else:
        lines = [summary, *result.failures, *result.warnings]
        context.log.warning("\n".join(lines) if len(lines) > 1 else f"{summary}: {result.error}")
    return list(dbt_events(batch, result))


class DataTests:
    """The dbt data tests of the live warehouse, run in a thread of their own beside the
    batches, their results reported as asset check evaluations.

    Run between two batches, they held the batches up for their whole duration (seconds, more
    on a busy machine), and the data's freshness with them. They only read, in a connection of
    their own to the same DuckDB database, so a batch replayed meanwhile is not held up (a
    batch built by dbt itself waits for dbt to be free). Flat out they still took the cores
    from the batches, so they are paced to `DATA_TESTS_SHARE` of the time (Pacer).
    """

    def __init__(self, context: OpExecutionContext, batch: MicroBatch, reporter: EventReporter):
        self._context, self._batch, self._reporter = context, batch, reporter
        self._due = time.monotonic() + FIRST_DATA_TESTS_AFTER_S
        self._thread: threading.Thread | None = None
        self._pacer: Pacer | None = None
        self._dbt_held = threading.Event()

    def start_when_due(self) -> None:
        now = time.monotonic()
        if now < self._due or self.running:
            return
        # A batch that needs dbt would wait for the tests (dbt runs one command at a time).
        if not self._batch.replays_every_model() and now < self._due + DATA_TESTS_WAIT_FOR_REPLAY_S:
            return
        self._due = now + DATA_TESTS_EVERY_S
        # A batch waiting for dbt (after a replay failed, say) gets it once the rest of the
        # tests ran flat out.
        self._pacer = Pacer(DATA_TESTS_SHARE, hurry_when=others_wait_for_dbt)
        self._thread = threading.Thread(target=self._run, name="c360-data-tests", daemon=True)
        self._dbt_held.clear()
        self._thread.start()
        # The next batch's replay runs in one transaction while dbt is held (MicroBatch._replay),
        # so that no test reads some models of a batch built and others not: from the first test.
        self._dbt_held.wait()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def finish(self) -> None:
        """Let tests in progress end (and report), unpaced, before the warehouse is handed
        over."""
        if self._pacer is not None:
            self._pacer.hurry()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        with DBT_LOCK:  # dbt's own lock, taken again by the run (re-entrant)
            self._dbt_held.set()
            try:
                self._reporter.report(run_data_tests(self._context, self._batch, self._pacer))
            except Exception as exc:  # noqa: BLE001 - the batches go on; the next round tries
                self._context.log.warning(f"the data tests could not run: {exc}")


@op(
    description="Micro-batches back to back until another warehouse writer waits or the run is "
    "terminated: extract every source, dbt build downstream of what landed, publish."
)
def run_microbatches(context: OpExecutionContext, pipeline: MicroBatchResource) -> None:
    batch = pipeline.microbatch()
    with Heartbeat(pipeline.settings(), context.run_id) as heartbeat:
        with EventReporter(context.instance) as reporter:
            try:
                waiting = batches_until_a_writer_waits(context, batch, heartbeat, reporter)
            except RuntimeError as exc:
                if is_duckdb_interrupt(exc):  # the interruption it was, not a failure
                    raise DagsterExecutionInterruptedError("interrupted in a micro-batch") from exc
                raise
    context.log.info(
        f"run {waiting.run_id[:8]} of {waiting.job_name} waits for the warehouse: the stream "
        "ends here and the sensor starts it again once that run is done"
    )


def batches_until_a_writer_waits(
    context: OpExecutionContext, batch: MicroBatch, heartbeat: Heartbeat, reporter: EventReporter
) -> DagsterRun:
    """Micro-batches back to back; returns the run of another writer that waits."""
    failing_since: float | None = None
    retry_pause = 1.0
    data_tests = DataTests(context, batch, reporter)
    writers_checked = float("-inf")
    while True:
        # Asked of Dagster's storage once a second, not before every (idle) batch.
        if time.monotonic() - writers_checked >= WRITER_CHECK_EVERY_S:
            writers_checked = time.monotonic()
            end_if_terminated(context)
            if waiting := writer_waiting(context.instance, context.run_id):
                data_tests.finish()
                return waiting
        # The data tests run beside the batches (DataTests), not in every build.
        result = batch.run(data_tests=False)
        heartbeat.batch_done(result.records, served=result.served)
        reporter.report(batch_events(batch, result, context.run_id))
        if result.records or not result.success:
            context.log.info("\n".join(result.summary_lines()))
        if result.success:
            data_tests.start_when_due()
        # Not while the data tests hold dbt: the loop would wait for them.
        learnt = None if data_tests.running else batch.learn_unlearnt_models(result)
        if learnt is not None:
            context.log.info(
                f"replay: dbt built {len(learnt.model_seconds)} models not learnt yet, "
                f"with no new data, in {learnt.seconds:.1f} s"
                + ("" if learnt.success else f"; FAILED: {'; '.join(learnt.failures)}")
            )
        if result.success:
            failing_since, retry_pause = None, 1.0
            if not result.records:
                time.sleep(IDLE_PAUSE_S)
            continue
        failing_since = failing_since or time.monotonic()
        if time.monotonic() - failing_since > FAIL_RUN_AFTER_S:
            raise Failure(
                f"every micro-batch failed for {FAIL_RUN_AFTER_S:.0f} s",
                metadata={"last": MetadataValue.md("\n".join(result.summary_lines()))},
            )
        time.sleep(retry_pause)
        retry_pause = min(retry_pause * 2, MAX_RETRY_PAUSE_S)


@job(
    name=STREAM_JOB,
    tags=WRITER_TAGS,
    # The batches run in the run worker itself: its pid is the one the heartbeat gives, and a
    # termination reaches the loop directly.
    executor_def=in_process_executor,
    description="The live pipeline: one long-running run doing micro-batches back to back, "
    "started and restarted by microbatch_sensor.",
)
def microbatch_stream():
    run_microbatches()
