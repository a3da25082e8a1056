"""The stream's dbt data tests without dbt around them: each test's query as dbt last sent it,
run again, and dbt's verdict taken from the row it returns.

The data tests read the live warehouse every 15 minutes beside the micro-batches (paced, see
pacer.py), so the time they take is taken from the batches. Most of it was dbt's own: at
100,000 customers (a copy of a `c360 bench` warehouse, 7.4 M events, 264 data tests, one
thread, 2026-12-07) `dbt test` in-process took 9.9 s of CPU, and the statements it sent, run
again, 3.1 s: dbt renders each test, runs it through its adapter and reports it in events
(~25 ms a test). A data test's query is dbt's `get_test_sql` over the test's SQL: one row
with the number of failing rows and whether to warn and to fail (the test's `warn_if` and
`error_if` are in the SQL). It depends on the project only (no test of this project reads
the warehouse while dbt renders it), so once dbt ran the tests of a parsed project their
queries can be sent again, as the micro-batch replays the models' statements
(model_replay.py), and the verdict is dbt's own rule (`TestRunner.build_test_run_result`): a
test of severity error fails when the row says so, else it warns when the row says so, else
it passes.

A query that fails, or returns anything but that one row, makes its test an error, and the
replay forgets what it learnt: the next run goes through dbt, which says why in its own words
and learns again. So does a new parse of the project.

What is learnt is also kept in a file beside the warehouse, with the fingerprint of the parsed
project (`dbt_invoker.manifest_fingerprint`), so that the next process of the stream (after a
restart, a crash or `c360 up` again) replays its first run too when its parse of the project
has the same fingerprint: dbt's run of the tests kept a new stream process busy 10-16 s over
30-63 s in which its batches were slower (beside a live stream and in `make demo`, 2026-12-07).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from customer360.pipeline.model_replay import statement_kinds

log = logging.getLogger(__name__)

TRANSACTION = duckdb.StatementType.TRANSACTION

# The columns of dbt's `get_test_sql`, in its order.
VERDICT_COLUMNS = ("failures", "should_warn", "should_error")


@dataclass(frozen=True)
class LearntTest:
    unique_id: str
    sql: str  # the last statement dbt sent for the test: its verdict query
    severity: str  # ERROR or WARN
    warn_if: str
    error_if: str


@dataclass(frozen=True)
class DataTestOutcome:
    unique_id: str
    status: str  # pass, warn, fail or error, as dbt says
    message: str | None
    failures: int | None


def verdict(
    test: LearntTest, failures: int, should_warn: bool, should_error: bool
) -> tuple[str, str | None]:
    """dbt's status and message for a test's row (without dbt's `--warn-error`, which the
    stream does not pass)."""
    results = f"{failures} result{'' if failures == 1 else 's'}"
    if test.severity == "ERROR" and should_error:
        return "fail", f"Got {results}, configured to fail if {test.error_if}"
    if should_warn:
        return "warn", f"Got {results}, configured to warn if {test.warn_if}"
    return "pass", None


class DataTestReplay:
    """The data tests of one parsed project, learnt from a dbt run of them, and kept in the
    file `kept_at` (if given) for the next process."""

    def __init__(self, kept_at: Path | None = None) -> None:
        self._learnt_for: object | None = None
        self._tests: list[LearntTest] = []
        self._kept_at = kept_at

    def learn(
        self,
        project: object,
        manifest: Mapping,
        tests_run: Iterable[tuple[str, str]],
        queries: Iterable[tuple[str, str]],
        fingerprint: str | None = None,
    ) -> None:
        """Take in a dbt run of the data tests of `project` (the parsed manifest, compared by
        identity; `manifest` is its manifest.json, `fingerprint` what `recall` compares):
        `tests_run` its (unique id, status) pairs in the order dbt ran them, `queries` the
        (unique id, sql) of every statement dbt sent. A run in which a test errored, or sent no
        query, teaches nothing."""
        self.forget()
        sent: dict[str, str] = {}
        with duckdb.connect() as parser:
            for unique_id, sql in queries:
                if unique_id.startswith("test.") and statement_kinds(parser, sql) != {TRANSACTION}:
                    sent[unique_id] = sql  # the last one: the catalog reads come before it
        learnt = []
        for unique_id, status in tests_run:
            config = manifest["nodes"][unique_id]["config"]
            if status == "error" or unique_id not in sent:
                return
            learnt.append(
                LearntTest(
                    unique_id,
                    sent[unique_id],
                    str(config["severity"]).upper(),
                    config["warn_if"],
                    config["error_if"],
                )
            )
        if learnt:
            self._tests, self._learnt_for = learnt, project
            if self._kept_at is not None and fingerprint is not None:
                self._keep(fingerprint)

    def recall(self, project: object, fingerprint: str) -> bool:
        """Take in the tests kept by a process that learnt them from a parse with the same
        `fingerprint`, as learnt for `project`; False when there are none (or another
        project's, or a file that cannot be read)."""
        if self._kept_at is None:
            return False
        try:
            kept = json.loads(self._kept_at.read_text())
            if kept["fingerprint"] != fingerprint:
                log.info("data tests kept in %s are of another parse: dbt runs them", self._kept_at)
                return False
            tests = [LearntTest(**test) for test in kept["tests"]]
        except FileNotFoundError:
            return False
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("data tests kept in %s not read (%s): dbt runs them", self._kept_at, exc)
            return False
        if tests:
            self._tests, self._learnt_for = tests, project
            log.info("data tests: replaying the queries dbt sent, kept in %s", self._kept_at)
        return bool(tests)

    def _keep(self, fingerprint: str) -> None:
        """Write what was learnt to `kept_at`, whole or not at all (a crash mid-write leaves
        no file the next process reads)."""
        text = json.dumps(
            {"fingerprint": fingerprint, "tests": [asdict(test) for test in self._tests]}
        )
        partial = self._kept_at.with_name(self._kept_at.name + ".partial")
        try:
            partial.write_text(text)
            os.replace(partial, self._kept_at)
        except OSError as exc:
            log.warning("data tests not kept in %s (%s): the next process runs dbt", partial, exc)

    def forget(self) -> None:
        self._learnt_for, self._tests = None, []
        if self._kept_at is not None:
            self._kept_at.unlink(missing_ok=True)

    def can_replay(self, project: object) -> bool:
        return self._learnt_for is not None and self._learnt_for is project

    @property
    def tests(self) -> list[LearntTest]:
        return list(self._tests)

    def replay(
        self,
        con: duckdb.DuckDBPyConnection,
        after_each_test: Callable[[], None] | None = None,
    ) -> list[DataTestOutcome]:
        """Run every learnt test on `con` (a connection of the caller's thread), one after the
        other, each in a transaction of its own that changes nothing, as dbt runs them;
        `after_each_test` is called after each (a Pacer's step)."""
        outcomes = []
        for test in self._tests:
            try:
                failures, should_warn, should_error = self._verdict_row(con, test)
                status, message = verdict(test, failures, should_warn, should_error)
            except (duckdb.Error, ValueError) as exc:
                failures, status, message = None, "error", str(exc)
            outcomes.append(DataTestOutcome(test.unique_id, status, message, failures))
            if after_each_test is not None:
                after_each_test()
        if any(outcome.status == "error" for outcome in outcomes):
            self.forget()
        return outcomes

    @staticmethod
    def _verdict_row(con: duckdb.DuckDBPyConnection, test: LearntTest) -> tuple[int, bool, bool]:
        con.execute("begin")
        try:
            cursor = con.execute(test.sql)
            columns = tuple(d[0] for d in cursor.description or ())
            rows = cursor.fetchall()
        finally:
            con.execute("rollback")
        if columns != VERDICT_COLUMNS or len(rows) != 1:
            raise ValueError(
                f"the replayed query of {test.unique_id} returned {len(rows)} rows of "
                f"{columns}, not one row of {VERDICT_COLUMNS}"
            )
        failures, should_warn, should_error = rows[0]
        return int(failures), bool(should_warn), bool(should_error)
