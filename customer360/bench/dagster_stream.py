"""What Dagster's micro-batch stream reported, read back from its DAGSTER_HOME (public API only).

The live pipeline under Dagster is one long-running run of the job `microbatch_stream`
(`dagster_project/stream.py`) doing micro-batches back to back. What it leaves in Dagster's
storage, and what this module reads:

- **one log line per micro-batch that landed records or failed**: the batch's
  `MicroBatchResult.summary_lines()`, whose last line is its split,
  `micro-batch  <records> records; extract <ms> ms, dbt <ms> ms, publish <ms> ms, checkpoint
  <ms> ms` (older runs logged no checkpoint), and whose
  `FAILED` lines say what failed. The entry's timestamp is when the batch ended. Batches with
  nothing new are not logged (the heartbeat file counts them);
- **one log line per run of the dbt data tests** between two batches (`data tests: <passed>/<run>
  passed in <s> s`): INFO when dbt succeeded (warned or skipped tests do not fail it), WARNING
  followed by the failures when it did not;
- **runless materializations** of the raw and dbt assets for each batch (metadata `stream_run`;
  a raw one has `records` and `position_after`), written from a thread of the run shortly after
  the batch: what the operator sees in the UI.

Used by `c360 bench --mode dagster` (the per-batch split, and how long a record takes to show
in Dagster) and by the chaos soak (`customer360/chaos/pipelines.py`: when batches ran, which
failed, and recovery after a fault).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from customer360.pipeline.microbatch import MODEL_SECONDS_PREFIX

SPLIT_LINE = re.compile(
    r"^micro-batch\s+(?P<records>\d+) records; extract (?P<extract>\d+) ms, "
    r"dbt (?P<dbt>\d+) ms, publish (?P<publish>\d+) ms(?:, checkpoint (?P<checkpoint>\d+) ms)?\s*$",
    re.MULTILINE,
)
MODEL_SECONDS_LINE = re.compile(
    rf"^{re.escape(MODEL_SECONDS_PREFIX)}\s+(?P<models>\S+ \d+(?:, \S+ \d+)*)\s*$", re.MULTILINE
)
# "data tests: 255/259 passed, 4 warn in 42.0 s": the tests that did not pass counted by status.
DATA_TESTS_LINE = re.compile(
    r"^data tests: (?P<passed>\d+)/(?P<run>\d+) passed(?P<others>(?:, \d+ \w+)*) in (?P<s>[\d.]+) s"
)


@dataclass(frozen=True)
class StreamBatch:
    """One logged micro-batch of a stream run (times in epoch seconds)."""

    run_id: str
    number: int  # its place among the run's logged batches, from 1
    ended: float  # when the run logged it, right after the batch
    records: int
    extract_s: float
    dbt_s: float
    publish_s: float
    failures: tuple[str, ...] = ()  # the summary's FAILED lines; empty: the batch succeeded
    models: tuple[tuple[str, float], ...] = ()  # (model, seconds) of its build
    checkpoint_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.extract_s + self.dbt_s + self.publish_s + self.checkpoint_s

    @property
    def began(self) -> float:
        return self.ended - self.seconds

    @property
    def succeeded(self) -> bool:
        return not self.failures

    def as_bench_record(self) -> dict:
        """The batch as a line of `c360 bench --mode loop`'s report (`bench.loop.batch_record`)."""
        return {
            "started_at": self.began,
            "ended_at": self.ended,
            "records": self.records,
            "extract_s": self.extract_s,
            "dbt_s": self.dbt_s,
            "publish_s": self.publish_s,
            "checkpoint_s": self.checkpoint_s,
            "success": self.succeeded,
            "errors": list(self.failures),
            "run_id": self.run_id,
            "models": dict(self.models),
        }


def parse_batch_log(message: str, run_id: str, number: int, at: float) -> StreamBatch | None:
    """The batch a stream run's log message reports, or None for any other message."""
    matches = list(SPLIT_LINE.finditer(message or ""))
    if not matches:
        return None
    split = matches[-1]
    failures: list[str] = []
    in_failure = False
    for line in message.splitlines():
        if "FAILED" in line:
            failures.append(line.strip())
            in_failure = True
        elif in_failure and line.startswith("  "):  # a dbt failure listed under its FAILED line
            failures.append(line.strip())
        else:
            in_failure = False
    return StreamBatch(
        run_id=run_id,
        number=number,
        ended=at,
        records=int(split["records"]),
        extract_s=int(split["extract"]) / 1000,
        dbt_s=int(split["dbt"]) / 1000,
        publish_s=int(split["publish"]) / 1000,
        failures=tuple(failures),
        models=parse_model_seconds(message),
        checkpoint_s=int(split["checkpoint"] or 0) / 1000,
    )


def parse_model_seconds(message: str) -> tuple[tuple[str, float], ...]:
    """The (model, seconds) of a batch summary's `models (ms)` line, if it has one."""
    match = MODEL_SECONDS_LINE.search(message)
    if match is None:
        return ()
    timed = (entry.rsplit(" ", 1) for entry in match["models"].split(", "))
    return tuple((model, int(ms) / 1000) for model, ms in timed)


@dataclass(frozen=True)
class StreamDataTests:
    """One run of the dbt data tests inside a stream run (times in epoch seconds)."""

    run_id: str
    number: int  # its place among the run's data test runs, from 1
    ended: float
    passed: int
    run: int
    seconds: float
    succeeded: bool  # logged at INFO: dbt test succeeded
    failures: tuple[str, ...] = ()  # the logged tests that failed or errored, one a line
    not_passed: tuple[tuple[str, int], ...] = ()  # (status, tests) of those that did not pass
    warned: tuple[str, ...] = ()  # the logged tests that warned

    @property
    def began(self) -> float:
        return self.ended - self.seconds


def parse_data_tests_log(
    message: str, run_id: str, number: int, at: float, level: int = logging.INFO
) -> StreamDataTests | None:
    """The data tests a stream run's log message (logged at `level`) reports, or None for any
    other message."""
    lines = (message or "").splitlines()
    match = DATA_TESTS_LINE.match(lines[0]) if lines else None
    if match is None:
        return None
    listed = [line.strip() for line in lines[1:] if line.strip()]
    return StreamDataTests(
        run_id=run_id,
        number=number,
        ended=at,
        passed=int(match["passed"]),
        run=int(match["run"]),
        seconds=float(match["s"]),
        succeeded=level < logging.WARNING,
        failures=tuple(line for line in listed if not _warned(line)),
        not_passed=tuple(
            (status, int(n))
            for n, status in (o.split(" ") for o in match["others"].split(", ") if o)
        ),
        warned=tuple(line for line in listed if _warned(line)),
    )


def _warned(line: str) -> bool:
    """A test listed as `unique_id: warn: message` (DbtBuildResult.warnings)."""
    return line.split(": ", 2)[1:2] == ["warn"]


class StreamLog:
    """The stream's runs and their logged batches, read incrementally from a Dagster instance."""

    def __init__(self, instance):
        self.instance = instance
        self._cursors: dict[str, str | None] = {}
        self._read_to_end: set[str] = set()
        self._batches: dict[str, list[StreamBatch]] = {}
        self._data_tests: dict[str, list[StreamDataTests]] = {}

    def runs(self) -> list:
        """The stream's run records, oldest first."""
        from dagster import RunsFilter

        from dagster_project.stream import STREAM_JOB

        records = self.instance.get_run_records(RunsFilter(job_name=STREAM_JOB))
        return sorted(records, key=lambda r: r.create_timestamp)

    def other_runs(self, since: float) -> list:
        """Run records of the other jobs (a nightly job, a run started by hand) created after
        `since` (epoch seconds), oldest first: the writers among them take the warehouse from
        the stream."""
        from dagster import RunsFilter

        from dagster_project.stream import STREAM_JOB

        created_after = datetime.fromtimestamp(since, UTC)
        records = self.instance.get_run_records(RunsFilter(created_after=created_after))
        others = [r for r in records if r.dagster_run.job_name != STREAM_JOB]
        return sorted(others, key=lambda r: r.create_timestamp)

    def refresh(self) -> list[StreamBatch]:
        """Every logged batch of every stream run so far, in the order they ended."""
        for record in self.runs():
            run_id = record.dagster_run.run_id
            if run_id in self._read_to_end:
                continue
            finished = record.dagster_run.is_finished  # before reading: no entry is missed
            connection = self.instance.get_records_for_run(run_id, cursor=self._cursors.get(run_id))
            batches = self._batches.setdefault(run_id, [])
            tests = self._data_tests.setdefault(run_id, [])
            for event in connection.records:
                entry = event.event_log_entry
                if entry.dagster_event is not None:
                    continue  # a Dagster event, not the op's log
                message, at = entry.user_message, entry.timestamp
                if (batch := parse_batch_log(message, run_id, len(batches) + 1, at)) is not None:
                    batches.append(batch)
                elif tested := parse_data_tests_log(
                    message, run_id, len(tests) + 1, at, entry.level
                ):
                    tests.append(tested)
            self._cursors[run_id] = connection.cursor or self._cursors.get(run_id)
            if finished:
                self._read_to_end.add(run_id)
        return sorted((b for bs in self._batches.values() for b in bs), key=lambda b: b.ended)

    def batches_of(self, run_id: str) -> list[StreamBatch]:
        return list(self._batches.get(run_id, []))

    def data_tests(self) -> list[StreamDataTests]:
        """Every run of the data tests the stream's runs logged, as of the last `refresh`."""
        return sorted((t for ts in self._data_tests.values() for t in ts), key=lambda t: t.ended)


def kafka_positions(text: str) -> dict[int, int]:
    """A Kafka raw materialization's `position_after` ("0:12,1:40,2:7": the next offset of each
    partition) as {partition: next offset}."""
    positions = {}
    for part in (text or "").split(","):
        partition, _, offset = part.partition(":")
        if partition.strip().isdigit() and offset.strip().isdigit():
            positions[int(partition)] = int(offset)
    return positions


def raw_reports(instance, source: str, since: float) -> list[tuple[float, dict[int, int]]]:
    """(timestamp, Kafka positions after) of every materialization of `raw/<source>` reported
    since `since` (epoch seconds), oldest first."""
    from dagster import AssetKey

    reports: list[tuple[float, dict[int, int]]] = []
    cursor = None
    while True:
        result = instance.fetch_materializations(
            AssetKey(["raw", source]), limit=1000, cursor=cursor, ascending=True
        )
        for record in result.records:
            if record.timestamp < since:
                continue
            metadata = record.asset_materialization.metadata
            position = metadata.get("position_after")
            reports.append((record.timestamp, kafka_positions(getattr(position, "value", ""))))
        if not result.has_more:
            return reports
        cursor = result.cursor


def first_report_of(
    reports: list[tuple[float, dict[int, int]]], partition: int, offset: int
) -> float | None:
    """When Dagster first showed the Kafka record at (partition, offset) landed: the first raw
    materialization whose next offset for that partition is past it."""
    for at, positions in reports:
        if positions.get(partition, -1) > offset:
            return at
    return None
