"""One micro-batch: extract every source with something new, build what it feeds, publish.

`MicroBatch(settings)` keeps an `Extractor` (DuckDB, MongoDB change streams, Kafka consumers) and
a `DbtInvoker` (parsed manifest) warm, so a micro-batch with nothing new costs milliseconds and
one with new records pays for the extract and the build: an in-process dbt build (~1 s) until
dbt has sent the same statements twice for the models it needs, then those statements replayed
without dbt (model_replay.py, a few tenths of a second).

The extractor's DuckDB connection and dbt-duckdb's live in the same process on the same DuckDB
database instance (tested in tests/test_pipeline_microbatch.py): no second writer, no lock.

Which models to build is decided from the warehouse itself, not from what this batch landed: a
source needs building when its raw table holds a batch that `staging.stg_landing_batches` (the
per-source watermark of staging) has not seen, so a build that failed or a process that died
between extract and dbt is caught up by the next micro-batch.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from customer360.config import KAFKA_TOPICS, MONGO_COLLECTIONS, Settings
from customer360.pipeline.data_test_replay import DataTestReplay
from customer360.pipeline.dbt_invoker import DbtBuildResult, DbtInvoker, dbt_in_use
from customer360.pipeline.model_replay import (
    REPLAY_CONNECTIONS,
    ModelReplay,
    ReplayError,
    model_inputs,
    model_statements,
    models_to_build,
)
from customer360.pipeline.publishing import CATCH_UP_PUBLISH_EVERY_S, PublishSchedule
from customer360.serving.layout import reading_day
from customer360.serving.publish import PublishResult, publish_serving_copy
from extractors import SOURCES, BatchResult, Extractor

log = logging.getLogger(__name__)

# A batch's bounds, per source: records read, and seconds spent reading. They matter only for
# a backlog (a live batch takes in what waits, ~1,000-2,000 records at 1,000 events/s), where
# a batch's fixed cost and its recomputation of the customers it touches are paid once per
# batch. A 1 M-event backlog at 1 M events of history drained at 9,900 events/s in 16 batches
# of 50,000 records a source read in 5 s at most, 17,400/s with 250,000 in 15 s (4 batches)
# and 22,900/s with 500,000 in 20 s (2). With the next batch landed beside the build (run):
# 250,000 in 10 s 25,500/s, 500,000 in 20 s 26,750/s; at 7.4 M events of history 26,500/s and
# 25,400/s, peaking at 2.1 and 2.2 GB of memory. So the smaller bound (README, Performance).
MAX_RECORDS = 250_000
MAX_SECONDS = 10.0
# DuckDB optimizers the warehouse's instance runs without (set with its threads, MicroBatch.
# use_duckdb_threads). build_side_probe_side builds a join's hash table on the side it estimates
# smaller, and the models' filters on the customers a batch touched (`customer_id in (select
# customer_id from customers)`) are estimated so that it builds on the filtered table (163,000
# online orders, say) and probes it with the ~900 customers, batch after batch, where the plan as
# written builds on the customers. Replayed batches on a copy of a 10 M-event bench's warehouse,
# the models one after the other, alternated (2026-12-06 15:28-15:42, load 1.0-1.5): ~450
# records a batch on one thread, as a live batch's connection, 12 each way: 831 -> 708 ms (median
# of the models' sums; customer_360_base 158 -> 125, customer_identities 60 -> 50,
# int_guest_order_owners 53 -> 39); ~9,000 records on every thread, 4 each way: 1,577 -> 1,463
# ms; the dbt data tests 6.7-7.3 s either way.
DISABLED_OPTIMIZERS = "build_side_probe_side"
WATERMARK_RELATION = "staging.stg_landing_batches"
# The write-ahead log a batch checkpoints once it is past (see MicroBatch.checkpoint_due), well
# before DuckDB's own checkpoint at 16 MiB would, inside a batch's commit. A live batch at
# 100,000 customers logged ~0.8 MiB for 1,000 events (2026-12-05), ~2 MiB for the 1,200-1,600
# records of `c360 bench`'s batches (2026-12-06): one batch in two to five checkpoints. 8 MiB
# saved nothing (each checkpoint took longer: replayed batches alternated, README Performance).
CHECKPOINT_WAL_BYTES = 4 * 2**20


class MicroBatchError(RuntimeError):
    """Some source could not be extracted or the dbt build failed; the message says which."""


def state_path(settings: Settings) -> Path:
    """The published state of a warehouse (positions reached, sources dbt still owes).

    It lives next to the warehouse it describes and is what the sensor's probe reads, so the
    probe never opens the DuckDB file (only the writer may).
    """
    return settings.warehouse.with_name(settings.warehouse.name + ".state.json")


def kept_data_tests_path(settings: Settings) -> Path:
    """The data tests' queries learnt from dbt's last run of them (data_test_replay.py), for
    the warehouse's next stream process."""
    return settings.warehouse.with_name(settings.warehouse.name + ".data_tests.json")


def read_state(settings: Settings) -> dict | None:
    try:
        return json.loads(state_path(settings).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None


@dataclass
class MicroBatchResult:
    extracts: dict[str, BatchResult] = field(default_factory=dict)
    extract_errors: dict[str, str] = field(default_factory=dict)
    dbt_sources: list[str] = field(default_factory=list)  # sources whose downstream was built
    dbt: DbtBuildResult | None = None
    serving: PublishResult | None = None  # None while dbt owes a build: never half-built
    publish_deferred: bool = False  # a backlog drains (publishing.py)
    # Landed beside the previous batch's build (a backlog drains, see MicroBatch.run); its
    # extract_seconds is then what this batch still waited for it.
    landed_ahead: bool = False
    extract_seconds: float = 0.0
    dbt_seconds: float = 0.0
    publish_seconds: float = 0.0
    checkpoint_seconds: float = 0.0

    @property
    def total_seconds(self) -> float:
        return (
            self.extract_seconds + self.dbt_seconds + self.publish_seconds + self.checkpoint_seconds
        )

    @property
    def records(self) -> int:
        return sum(r.records for r in self.extracts.values())

    @property
    def models_built(self) -> list[str]:
        return self.dbt.models_built if self.dbt else []

    @property
    def remaining_lag(self) -> int | None:
        lags = [r.remaining_lag for r in self.extracts.values()]
        return None if any(lag is None for lag in lags) else sum(lags)  # type: ignore[misc]

    @property
    def success(self) -> bool:
        return not self.extract_errors and (self.dbt is None or self.dbt.success)

    @property
    def served(self) -> bool:
        """Whether the serving copy holds all this batch landed (not so while a backlog drains
        and its publication waits, nor after a failure)."""
        return self.success and not self.publish_deferred

    def raise_on_failure(self) -> None:
        problems = [f"extract {s}: {e}" for s, e in self.extract_errors.items()]
        if self.dbt is not None and not self.dbt.success:
            problems += self.dbt.failures or [f"dbt: {self.dbt.error}"]
        if problems:
            raise MicroBatchError("micro-batch failed:\n" + "\n".join(problems))

    def summary_lines(self) -> list[str]:
        lines = [r.summary_line() for r in self.extracts.values()]
        lines += [f"{s:<17} extract FAILED: {e}" for s, e in self.extract_errors.items()]
        if self.dbt is None:
            lines.append("dbt               nothing to build")
        else:
            lines.append(
                f"dbt               {len(self.models_built)} models built"
                + (" (replayed)" if self.dbt.replayed else " (by dbt)")
                + f", tests {self.dbt.tests_summary()} for {', '.join(self.dbt_sources)}"
                + ("" if self.dbt.success else "  FAILED")
            )
            lines += [f"  {f}" for f in [*self.dbt.failures, *self.dbt.warnings]]
            if self.dbt.model_seconds:
                lines.append(model_seconds_line(self.dbt.model_seconds))
        if self.serving is not None:
            lines.append(self.serving.summary_line())
        if self.publish_deferred:
            lines.append(
                f"serving           not published: a backlog drains (published once it is "
                f"drained, or every {CATCH_UP_PUBLISH_EVERY_S:.0f} s)"
            )
        if self.landed_ahead:
            lines.append(
                "extract           landed beside the previous batch's build (a backlog drains)"
            )
        lines.append(
            f"micro-batch       {self.records} records; extract {self.extract_seconds * 1000:.0f} "
            f"ms, dbt {self.dbt_seconds * 1000:.0f} ms, publish "
            f"{self.publish_seconds * 1000:.0f} ms, checkpoint "
            f"{self.checkpoint_seconds * 1000:.0f} ms"
        )
        return lines


# Two builds that send the same statements teach a model to the replay (model_replay.py).
LEARNING_BUILDS = 2

MODEL_SECONDS_PREFIX = "models (ms)"


def model_seconds_line(model_seconds: dict[str, float]) -> str:
    """Where a build's time went: every model with its milliseconds, the slowest first (parsed
    back by `c360 bench`, customer360/bench/dagster_stream.py)."""
    slowest = sorted(model_seconds.items(), key=lambda kv: -kv[1])
    return f"{MODEL_SECONDS_PREFIX:<17} " + ", ".join(f"{m} {s * 1000:.0f}" for m, s in slowest)


# How often an idle micro-batch looks whether the dbt project was edited (project_changed).
PROJECT_CHECK_EVERY_S = 1.0

# How often a micro-batch also runs the dbt data tests (the others build models only).
DATA_TESTS_EVERY_S = 60.0
# dbt's run of the data tests alone (run_data_tests): unit tests check the SQL, not the data
# (CI runs them); one test at a time, so that a caller pacing them after each (the stream's
# Pacer) is not handed several at once by dbt's threads.
DATA_TEST_ARGS = ["test", "--exclude-resource-type", "unit_test", "--threads", "1"]


def duckdb_threads(all_cores: int, backlog: bool) -> int:
    """DuckDB threads of the warehouse's instance for a batch, given DuckDB's default (`all_cores`).

    A live batch is hundreds of small statements that the replay runs on REPLAY_CONNECTIONS
    connections side by side, so each connection gets its share of the cores: together they
    never ask for more threads than there are. With all of them, every statement splits its
    little work over threads and waits for the slowest, and on a busy machine a thread the OS
    has given to another process stalls the statement (`c360 bench --customers 100000
    --history-events 1000000 --rate 1000`, 2026-12-05 03:13-03:28, two runs each way: batches
    p50 1.03-1.10 s with the share against 1.31-1.35 s, dbt 0.54-0.61 against 0.80-0.82 s,
    freshness p50 -16 % outside the data tests). A backlog's batches scan and join hundreds of
    thousands of rows, which every core speeds up (catch-up 38,340 events/s with all, 32,728
    with the share)."""
    return all_cores if backlog else max(1, all_cores // REPLAY_CONNECTIONS)


def caught_up(result: MicroBatchResult, max_records: int) -> bool:
    """Whether the batch `result` took in everything there was: no source's batch came back
    full (`max_records` read, quarantined ones included) or read some and stopped, its time up,
    before the rest of what was waiting (a remaining lag, or one it cannot tell: a Mongo copy
    not finished). A slow machine reads a backlog 90,000-130,000 records a source in a batch's 10 s,
    never `max_records`: counted as caught up, each batch of a 7 M-event history published a full
    copy (0.5-1.7 s) and landed nothing beside its build."""
    return not any(
        r.records + r.quarantined >= max_records
        or (r.records + r.quarantined > 0 and r.remaining_lag != 0)
        for r in result.extracts.values()
    )


def audience_day_behind(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether audience_changes last evaluated its audiences before the day dbt reads as today
    (serving.layout.reading_day): the day number its post-hook records in the dbt watermarks
    (days since 1970-01-01)."""
    try:
        row = con.execute(
            "select max(batch_id) from intermediate.dbt_watermarks"
            " where model = 'audience_changes' and source = 'audience_day'"
        ).fetchone()
    except duckdb.CatalogException:
        return False  # never built: sources_to_build builds everything anyway
    today = (date.fromisoformat(reading_day(con)) - date(1970, 1, 1)).days
    return row is not None and row[0] is not None and row[0] < today


class MicroBatch:
    """A warm micro-batch runner for one warehouse; call `.run()` as often as you like."""

    def __init__(
        self,
        settings: Settings,
        max_records: int = MAX_RECORDS,
        max_seconds: float = MAX_SECONDS,
        data_tests_every_s: float | None = DATA_TESTS_EVERY_S,  # None: never
    ):
        self.settings = settings
        self.max_records = max_records
        self.max_seconds = max_seconds
        self.data_tests_every_s = data_tests_every_s
        self._data_tests_ran_at: float | None = None
        # The parsed manifest whose views this process has (re)built; see build_models.
        self._views_built_for: object | None = None
        self._project_checked_at = float("-inf")  # see project_changed
        self.extractor = Extractor(settings)
        # The warehouse's write-ahead log, resolved as the warehouse was opened (see
        # checkpoint_due).
        self._wal = settings.warehouse.absolute().with_name(settings.warehouse.name + ".wal")
        self.dbt = DbtInvoker(settings)
        # The models' statements learnt from dbt's builds of the parsed manifest they came from.
        self.replay = ModelReplay()
        self._replay_learnt_for: object | None = None
        # The data tests' queries, learnt from dbt's run of them (see run_data_tests).
        self.data_test_replay = DataTestReplay(kept_at=kept_data_tests_path(settings))
        # Builds of learn_unlearnt_models for the parsed manifest it is learning for.
        self._learning: tuple[object | None, int] = (None, 0)
        # Sources whose models a failed build still owes, beyond what the watermark shows.
        self._dbt_owed: set[str] = set((read_state(settings) or {}).get("dbt_pending", []))
        # Set by a Dagster extract step for the dbt step of the same run (in-process executor).
        self.last_extract_errors: dict[str, str] = {}
        self.publish_schedule = PublishSchedule()
        # The next batch's extract, landing beside this batch's build while a backlog drains.
        self._land_ahead = ThreadPoolExecutor(1, thread_name_prefix="land-ahead")
        self._landing_ahead: Future[tuple[dict[str, BatchResult], dict[str, str]]] | None = None
        # DuckDB's default threads, and the warehouse's instance's (see duckdb_threads); read
        # at the first batch.
        self._all_cores: int | None = None
        self._threads: int | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.extractor.con

    # -- the three steps --------------------------------------------------------------------
    def extract(
        self, sources: tuple[str, ...] = SOURCES
    ) -> tuple[dict[str, BatchResult], dict[str, str]]:
        """One bounded batch of every source, side by side; a failing source does not stop the
        others (its connections are rebuilt on the next call)."""
        results, failures = self.extractor.extract_all(sources, self.max_records, self.max_seconds)
        errors = {}
        for source, exc in failures.items():
            log.warning("extracting %s failed: %s", source, exc)
            errors[source] = f"{type(exc).__name__}: {exc}"
        return results, errors

    def sources_to_build(self) -> list[str]:
        """Sources with landed batches the dbt models have not taken in yet (all on first use)."""
        raw_max = dict(
            self.con.execute(
                " union all ".join(f"select '{s}', max(batch_id) from raw.{s}" for s in SOURCES)
            ).fetchall()
        )
        try:
            seen = dict(
                self.con.execute(
                    f"select source, max(batch_id) from {WATERMARK_RELATION} group by source"
                ).fetchall()
            )
        except duckdb.CatalogException:
            return list(SOURCES)  # never built: build everything, marts exist even when empty
        behind = {s for s in SOURCES if raw_max[s] is not None and raw_max[s] > seen.get(s, -1)}
        to_build = [s for s in SOURCES if s in behind or s in self._dbt_owed]
        if not to_build and self.project_changed():
            # The dbt project was edited while this process runs (a model, the audience
            # definitions): build it all once, so the edit shows without waiting for data
            # (audience_changes evaluates every customer again after a definitions change).
            to_build = list(SOURCES)
        if not to_build and audience_day_behind(self.con):
            # A new UTC day with nothing landed: audience_changes evaluates every customer again
            # on its first build of the day (conditions relative to `today` move), so build it
            # (with what it reads; nothing new, so cheap) rather than wait for data.
            to_build = [SOURCES[0]]
        return to_build

    def project_changed(self) -> bool:
        """Whether the dbt project's files changed since this process last built it with dbt
        (DbtInvoker parses it again then); False before its first build. Looked at once every
        PROJECT_CHECK_EVERY_S at most (it reads the modification time of every project file,
        ~3 ms, and an idle stream asks every 0.1 s)."""
        if self._views_built_for is None:
            return False
        now = time.monotonic()
        if now - self._project_checked_at < PROJECT_CHECK_EVERY_S:
            return False
        self._project_checked_at = now
        return self._views_built_for is not self.dbt.manifest()

    def build_models(
        self, sources: list[str], data_tests: bool | None = None
    ) -> DbtBuildResult | None:
        """`dbt build` of everything downstream of `sources`: models, and their data tests when
        `data_tests` is true or, if None, when they are due (see `data_tests_every_s`)."""
        if not sources:
            return None
        select = None if set(sources) == set(SOURCES) else [f"source:raw.{s}+" for s in sources]
        now = time.monotonic()
        with_tests = self.data_tests_due(data_tests)
        manifest = self.dbt.manifest()
        if self._replay_learnt_for is not manifest:
            self.replay.forget()
            self._replay_learnt_for = manifest
        # Until the build succeeds the state says dbt owes these sources: a build stopped
        # halfway (a crash) has moved the watermark sources_to_build reads, not every model.
        if not self._dbt_owed >= set(sources):
            self._dbt_owed.update(sources)
            self._write_state()
        if (models := self.replayed_models(sources, with_tests)) is not None:
            return self._settle(sources, self._replay(models), with_tests, now)
        # A view changes only with the project (it is read at query time, `age` included): the
        # first build of a parsed project (re)creates every view, later ones skip them and save
        # dbt's fixed cost per node. Batches with data tests keep them (their tests need them).
        views_current = self._views_built_for is manifest
        if not views_current and select is not None:
            select = [*select, "config.materialized:view"]
        if with_tests:
            extra = ["--exclude-resource-type", "unit_test"]
        else:
            extra = ["--resource-type", "model"]
            if views_current:
                extra += ["--exclude", "config.materialized:view"]
        result = self.dbt.build(select, extra=extra)
        if result.success:
            self._views_built_for = manifest
            self.replay.learn(model_statements(result.queries))
        return self._settle(sources, result, with_tests, now)

    def run_data_tests(self, after_each_test: Callable[[], None] | None = None) -> DbtBuildResult:
        """The data tests of the warehouse: `dbt test` (DATA_TEST_ARGS), or, once dbt ran them
        for the parsed project (in this process, or in an earlier one whose parse had the same
        fingerprint), their queries replayed without dbt (data_test_replay.py).
        `after_each_test` is called as each test's result comes. Callable from a thread of its
        own beside the batches (the stream's data tests): a replay reads through a connection
        of its own, and a test that cannot be replayed sends the next run back to dbt."""
        manifest, project, fingerprint = self.dbt.parsed()
        replay = self.data_test_replay
        if not replay.can_replay(manifest):
            replay.recall(manifest, fingerprint)
        if not replay.can_replay(manifest):
            result = self.dbt.run(DATA_TEST_ARGS, after_each_node=after_each_test)
            # Learnt only if dbt ran the tests of this parse: a project edited meanwhile was
            # parsed again for the run, and its tests are learnt from the next one.
            if self.dbt.manifest_fingerprint() == fingerprint:
                replay.learn(manifest, project, result.tests_run, result.queries, fingerprint)
            return result
        started = time.monotonic()
        with self.con.cursor() as con:
            outcomes = replay.replay(con, after_each_test)
        return DbtBuildResult(
            args=["replay", "data tests"],
            success=not any(o.status in ("fail", "error") for o in outcomes),
            seconds=time.monotonic() - started,
            nodes=[(o.unique_id, o.status, o.message) for o in outcomes],
            replayed=True,
            failing_rows={o.unique_id: o.failures for o in outcomes if o.failures is not None},
        )

    def data_tests_due(self, data_tests: bool | None) -> bool:
        """Whether a build runs the data tests: as asked, or if None, when they are due.

        Unit tests check the SQL, not the data: CI runs them, not every micro-batch. Data tests
        cost several times the incremental models themselves, so they run at most every
        `data_tests_every_s` (and on the first build); the other batches build models only."""
        if data_tests is not None:
            return data_tests
        return self.data_tests_every_s is not None and (
            self._data_tests_ran_at is None
            or time.monotonic() - self._data_tests_ran_at >= self.data_tests_every_s
        )

    def replayed_models(self, sources: list[str], with_tests: bool) -> list[str] | None:
        """The models a build of `sources` replays (model_replay.py), or None when dbt builds
        them: data tests, views not built by this process's parse of the project, or models
        whose statements are not learnt yet."""
        if with_tests or not sources:
            return None
        manifest = self.dbt.manifest()
        if self._views_built_for is not manifest or self._replay_learnt_for is not manifest:
            return None
        models = models_to_build(self.dbt.manifest_dict(), sources)
        return models if self.replay.can_replay(models) else None

    def _replay(self, models: list[str]) -> DbtBuildResult:
        """The models' statements as dbt last sent them (see model_replay), side by side.

        While the next batch lands beside the build (run), the models reading the landing
        tables run first in one transaction, so they all read the same batches: were
        stg_landing_batches to take in a batch landed halfway through the build and
        stg_weblogs not, sources_to_build would see that batch built, and stg_weblogs would
        take it in only with the next batch of weblogs, if any came. While dbt runs beside
        the batch (the stream's data tests read the warehouse), every model runs in one
        transaction, so that no test reads some models of the batch built and others not."""
        started = time.monotonic()
        args = ["replay", *(unique_id.rsplit(".", 1)[-1] for unique_id in models)]
        inputs = model_inputs(self.dbt.manifest_dict(), models)
        together = []
        if dbt_in_use():
            together = models
        elif self._landing_ahead is not None:
            together = [m for m in models if any(i.startswith("source.") for i in inputs[m])]
        try:
            seconds = self.replay.replay(self.con, models, inputs, together)
        except ReplayError as exc:
            # The next attempt goes through dbt, which says why in its own words and re-learns.
            self.replay.forget()
            return DbtBuildResult(
                args=args,
                success=False,
                seconds=time.monotonic() - started,
                nodes=[(exc.unique_id, "error", str(exc))],
                error=str(exc),
                replayed=True,
            )
        return DbtBuildResult(
            args=args,
            success=True,
            seconds=time.monotonic() - started,
            nodes=[(unique_id, "success", None) for unique_id in models],
            replayed=True,
            model_seconds={u.rsplit(".", 1)[-1]: s for u, s in seconds.items()},
        )

    def _settle(
        self, sources: list[str], result: DbtBuildResult, with_tests: bool, started: float
    ) -> DbtBuildResult:
        """Book a build's outcome: data tests run, sources still owed."""
        if with_tests and result.success:
            self._data_tests_ran_at = started
        if result.success:
            self._dbt_owed.clear()
        else:
            self._dbt_owed.update(sources)
        return result

    def publish(self) -> PublishResult | None:
        """Publish for readers: the positions reached and what dbt still owes (for the sensor's
        probe), then the serving copy of the marts (for BI tools, the API and the dashboard).

        The serving copy is only replaced when dbt owes nothing: after a failed build some marts
        may be newer than others, and readers keep the last consistent copy instead.
        """
        self._write_state()
        if self._dbt_owed:
            log.warning("serving copy not published: dbt still owes %s", sorted(self._dbt_owed))
            return None
        return publish_serving_copy(self.con, self.settings)

    def _write_state(self) -> dict:
        kafka: dict[str, dict[str, int]] = {}
        for topic, partition, offset in self.con.execute(
            'select topic, "partition", next_offset from raw._kafka_offsets'
        ).fetchall():
            kafka.setdefault(topic, {})[str(partition)] = offset
        mongo = {
            collection: {"resume_token": token, "snapshot_done": done}
            for collection, token, done in self.con.execute(
                "select collection, resume_token, snapshot_done from raw._mongo_positions"
            ).fetchall()
        }
        state = {
            "warehouse": str(self.settings.warehouse),
            "published_at": datetime.now(UTC).isoformat(),
            "kafka": {t: kafka.get(self.settings.topic(t), {}) for t in KAFKA_TOPICS},
            "mongo": {c: mongo.get(c) for c in MONGO_COLLECTIONS},
            "dbt_pending": sorted(self._dbt_owed),
        }
        path = state_path(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)
        return state

    # -- all of it --------------------------------------------------------------------------
    def run(self, data_tests: bool | None = None) -> MicroBatchResult:
        """One micro-batch; `data_tests` as in `build_models` (None: when they are due).

        While a backlog drains (this batch came back full and will not publish), the next
        batch is landed beside this one's build when the build is replayed: the extract is
        mostly Python (decoding, validating) and the build mostly DuckDB, so they share the
        two cores, and the replayed models that read the landing tables read them in one
        transaction (_replay), so a batch landed meanwhile is built whole by one build: this
        one's if it committed before they began, else the next. The next `run()` builds what
        was landed ahead and not built yet."""
        result = MicroBatchResult()
        started = time.monotonic()
        if self._landing_ahead is not None:
            landing, self._landing_ahead = self._landing_ahead, None
            result.extracts, result.extract_errors = landing.result()
            result.landed_ahead = True
        else:
            result.extracts, result.extract_errors = self.extract()
        result.extract_seconds = time.monotonic() - started

        started = time.monotonic()
        result.dbt_sources = self.sources_to_build()
        with_tests = self.data_tests_due(data_tests)
        live = caught_up(result, self.max_records)
        self.use_duckdb_threads(backlog=not live)
        publish = self.publish_schedule.due(live)
        if not publish and self.replayed_models(result.dbt_sources, with_tests) is not None:
            self._landing_ahead = self._land_ahead.submit(self.extract)
        result.dbt = self.build_models(result.dbt_sources, with_tests)
        result.dbt_seconds = time.monotonic() - started

        started = time.monotonic()
        if publish:
            result.serving = self.publish()
            self.publish_schedule.published()
        else:
            self._write_state()
            result.publish_deferred = True
        result.publish_seconds = time.monotonic() - started

        # A CHECKPOINT fails while a landing's transaction is open: the batch that catches up
        # checkpoints what the backlog's batches wrote.
        if result.dbt is not None and self._landing_ahead is None and self.checkpoint_due():
            started = time.monotonic()
            self.checkpoint()
            result.checkpoint_seconds = time.monotonic() - started
        return result

    def use_duckdb_threads(self, backlog: bool) -> None:
        """Set the warehouse instance's DuckDB threads for a batch (see `duckdb_threads`); a
        statement only when the number changes (a live stream never sets it again). The first
        batch also turns DISABLED_OPTIMIZERS off."""
        if self._all_cores is None:
            # From an instance of its own: the warehouse's may have been set by another
            # MicroBatch of this process (DuckDB shares an instance per file within a process).
            with duckdb.connect() as fresh:
                (setting,) = fresh.execute("select current_setting('threads')").fetchone()
            self._all_cores = int(setting)
            (setting,) = self.con.execute("select current_setting('threads')").fetchone()
            self._threads = int(setting)
            self.con.execute(f"set disabled_optimizers = '{DISABLED_OPTIMIZERS}'")
        wanted = duckdb_threads(self._all_cores, backlog)
        if wanted != self._threads:
            self.con.execute(f"set threads = {wanted}")
            self._threads = wanted
            log.info("DuckDB threads: %d (%s)", wanted, "a backlog" if backlog else "live")

    def checkpoint_due(self) -> bool:
        """Whether the write-ahead log has grown past CHECKPOINT_WAL_BYTES.

        Left to DuckDB, the commit that takes the log past 16 MiB checkpoints inside a batch,
        before it is visible: every ~15-20 batches at 1,000 events/s, ~0.6 s quiet and 3-5 s
        under load (the slowest batches of `c360 bench`). So the pipeline checkpoints itself,
        after a batch is published; but most of a checkpoint's cost does not grow with the log,
        so not after every batch: ~1,000-record batches replayed on a 100,000-customer
        warehouse (2026-12-05, blocks of 10 alternated, 60 batches each) took 1,200 ms on
        average checkpointing after each (144 ms a checkpoint), 1,123 ms checkpointing past
        4 MiB (12 checkpoints, of ~5 batches' log, ~195 ms each); p95 1,541 against 1,494 ms."""
        try:
            return self._wal.stat().st_size >= CHECKPOINT_WAL_BYTES
        except FileNotFoundError:
            return False

    def checkpoint(self) -> None:
        """Move what the batches wrote from the write-ahead log into the database file, once
        they are published. A background thread would not take it off the path: DuckDB holds
        the next batch's commits until a checkpoint ends. A failed one is left to a later
        batch."""
        try:
            self.con.execute("checkpoint")
        except duckdb.Error as exc:
            log.info("checkpoint skipped: %s", exc)

    def _unlearnt_models(self, manifest) -> list[str] | None:
        """The models whose statements the replay has not learnt for the parsed project
        `manifest`, or None while its views or its replay are not current (the next batch
        builds through dbt anyway: views, a new parse)."""
        if self._views_built_for is not manifest or self._replay_learnt_for is not manifest:
            return None
        return self.replay.unlearnt(models_to_build(self.dbt.manifest_dict(), SOURCES))

    def replays_every_model(self) -> bool:
        """Whether a batch of any source would be replayed, without dbt."""
        return self._unlearnt_models(self.dbt.manifest()) == []

    def learn_unlearnt_models(self, after: MicroBatchResult) -> DbtBuildResult | None:
        """Once everything landed is built, let dbt build the models whose statements the
        replay has not learnt yet, so that the batches needing them later are replayed instead
        of waiting for two dbt builds (seconds each) while data arrives: after a new parse, or
        models no batch has needed twice yet (the orders' models after a history whose last
        batches landed weblogs). With no new data each model's build changes nothing; the
        statements it sends are those of a batch with data (the watermarks are evaluated when
        they run, see model_replay). Does nothing unless the batch `after` succeeded and caught
        up with every source (none filled `max_records`); at most two builds per parse. The
        live stream calls it between batches (dagster_project/stream.py)."""
        if not (after.success and caught_up(after, self.max_records)):
            return None
        manifest = self.dbt.manifest()
        learning_for, builds = self._learning
        if learning_for is not manifest:
            builds = 0
        if builds >= LEARNING_BUILDS:  # SQL that never agrees twice is learnt no further
            return None
        unlearnt = self._unlearnt_models(manifest)
        if not unlearnt or self.sources_to_build():
            return None
        self._learning = (manifest, builds + 1)
        names = [unique_id.rsplit(".", 1)[-1] for unique_id in unlearnt]
        result = self.dbt.build(names, extra=["--resource-type", "model"])
        if not result.success:
            log.warning("learning the replay failed: %s", "; ".join(result.failures))
            return result
        self.replay.learn(model_statements(result.queries))
        log.info(
            "replay: dbt built %d models not learnt yet, with no new data, in %.1f s (%s)",
            len(names), result.seconds, ", ".join(names),
        )  # fmt: skip
        return result

    def close(self) -> None:
        """Let a landing in progress commit (or fail), then close the connections."""
        self._land_ahead.shutdown(wait=True)
        self.extractor.close()

    def __enter__(self) -> MicroBatch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_WARM: dict[Settings, MicroBatch] = {}


def warm_microbatch(settings: Settings) -> MicroBatch:
    """The process's `MicroBatch` for these settings, created on first use and kept warm.

    Runs executed inside a long-lived process (Dagster's in-memory run launcher in the daemon,
    `c360 up`) reuse its connections and parsed dbt manifest from one run to the next.
    """
    batch = _WARM.get(settings)
    if batch is None:
        batch = _WARM[settings] = MicroBatch(settings)
    return batch


def close_warm_microbatches() -> None:
    while _WARM:
        _, batch = _WARM.popitem()
        batch.close()
