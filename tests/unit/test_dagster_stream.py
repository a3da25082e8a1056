"""Reading back what Dagster's micro-batch stream reported (`customer360/bench/dagster_stream.py`):
the batch lines its run logs, the runs of an instance, and which record a raw materialization
covers. No services: batches are `MicroBatchResult`s built by hand, runs execute in process on an
ephemeral instance."""

from __future__ import annotations

import logging
import os
import signal
import threading

import duckdb
import pytest

from customer360.bench.dagster_stream import (
    StreamLog,
    first_report_of,
    kafka_positions,
    parse_batch_log,
    parse_data_tests_log,
)
from customer360.pipeline.dbt_invoker import DbtBuildResult
from customer360.pipeline.microbatch import MicroBatchResult
from dagster_project.stream import is_duckdb_interrupt
from extractors.batch import BatchResult


def landed(source: str, records: int, after: str = "0:5") -> BatchResult:
    return BatchResult(source=source, batch_id=7, records=records, quarantined=0, bytes=100,
                       position_before="0:0", position_after=after, remaining_lag=0,
                       seconds=0.01)  # fmt: skip


def a_batch(failed_extract: bool = False, failed_dbt: bool = False) -> MicroBatchResult:
    """120 weblogs and 3 orders landed; extract 0.25 s, dbt 1.5 s, publish 0.125 s."""
    dbt = DbtBuildResult(
        args=["build"],
        success=not failed_dbt,
        seconds=1.5,
        nodes=[("model.c360.stg_weblogs", "success", None)]
        + ([("model.c360.customer_360_base", "error", "Binder Error: x")] if failed_dbt else []),
        replayed=not failed_dbt,
        model_seconds={"stg_weblogs": 0.0125, "customer_360_base": 0.25},
    )
    result = MicroBatchResult(
        extracts={"weblogs": landed("weblogs", 120), "online_orders": landed("online_orders", 3)},
        dbt_sources=["weblogs", "online_orders"],
        dbt=dbt,
        extract_seconds=0.25,
        dbt_seconds=1.5,
        publish_seconds=0.125,
        checkpoint_seconds=0.0625,
    )
    if failed_extract:
        result.extract_errors["marketing_emails"] = "KafkaError: broker down"
    return result


def test_a_logged_batch_gives_its_records_split_and_times():
    # The message is what the stream run logs: the batch's own summary lines.
    message = "\n".join(a_batch().summary_lines())
    batch = parse_batch_log(message, "run-1", 3, at=1000.0)
    assert (batch.run_id, batch.number, batch.records) == ("run-1", 3, 123)
    assert (batch.extract_s, batch.dbt_s, batch.publish_s) == (0.25, 1.5, 0.125)
    assert batch.checkpoint_s == 0.062  # logged in whole milliseconds
    older = parse_batch_log("micro-batch       5 records; extract 1 ms, dbt 2 ms, publish 3 ms",
                            "run-0", 1, at=1.0)  # fmt: skip
    assert older is not None and (older.publish_s, older.checkpoint_s) == (0.003, 0.0)
    assert batch.began == pytest.approx(1000.0 - 1.937)
    assert batch.succeeded and batch.failures == ()
    assert batch.as_bench_record()["dbt_s"] == 1.5
    # where the build's time went, per model (the bench's models_s_mean in dagster mode)
    assert batch.as_bench_record()["models"] == {"customer_360_base": 0.25, "stg_weblogs": 0.012}


def test_a_failed_batch_says_what_failed():
    message = "\n".join(a_batch(failed_extract=True, failed_dbt=True).summary_lines())
    batch = parse_batch_log(message, "run-1", 1, at=10.0)
    assert not batch.succeeded
    assert any("marketing_emails" in f and "broker down" in f for f in batch.failures)
    assert any("customer_360_base" in f and "Binder Error" in f for f in batch.failures)


def test_a_data_tests_line_is_not_a_batch_and_a_batch_is_not_data_tests():
    ok = parse_data_tests_log("data tests: 120/120 passed in 3.5 s", "r", 1, 10.0)
    assert ok.succeeded and ok.seconds == 3.5
    assert parse_batch_log("data tests: 120/120 passed in 3.5 s", "r", 1, 10.0) is None
    assert parse_data_tests_log("\n".join(a_batch().summary_lines()), "r", 1, 10.0) is None


def test_data_tests_that_warned_are_counted_and_listed_apart_from_failures():
    result = DbtBuildResult(
        args=["test"],
        success=False,
        seconds=4.2,
        nodes=[("test.c360.not_null_x", "pass", None), ("test.c360.unique_x", "fail", "2 rows"),
               ("test.c360.relationships_a", "warn", "Got 3 results, configured to warn if != 0"),
               ("test.c360.relationships_b", "warn", "Got 1 result, configured to warn if != 0")],
    )  # fmt: skip
    assert result.tests_summary() == "1/4 passed, 1 fail, 2 warn"
    assert result.warnings == [
        "test.c360.relationships_a: warn: Got 3 results, configured to warn if != 0",
        "test.c360.relationships_b: warn: Got 1 result, configured to warn if != 0",
    ]
    # As the stream logs them (dagster_project/stream.py run_data_tests).
    message = "\n".join(
        [f"data tests: {result.tests_summary()} in 4.2 s (their queries replayed without dbt;"
         " paced to 25% of the time: 3.0 s of pauses)", *result.failures, *result.warnings]
    )  # fmt: skip
    tests = parse_data_tests_log(message, "r", 1, 10.0, level=logging.WARNING)
    assert (tests.passed, tests.run, tests.seconds, tests.succeeded) == (1, 4, 4.2, False)
    assert tests.not_passed == (("fail", 1), ("warn", 2))
    assert tests.failures == ("test.c360.unique_x: fail: 2 rows",)
    assert tests.warned == tuple(result.warnings)
    # A batch's summary counts them the same way and lists the warnings under its dbt line.
    batch = a_batch()
    batch.dbt.nodes += result.nodes[2:]
    lines = batch.summary_lines()
    assert any("tests 0/2 passed, 2 warn for weblogs, online_orders" in line for line in lines)
    assert parse_batch_log("\n".join(lines), "r", 1, 10.0).succeeded


def test_other_log_lines_are_not_batches():
    assert (
        parse_batch_log("run 1234abcd of dbt_data_tests waits for the warehouse", "r", 1, 0) is None
    )
    assert parse_batch_log("", "r", 1, 0.0) is None


def test_the_runs_and_batches_of_an_instance_are_read_incrementally():
    from dagster import DagsterInstance, job, op

    lines = ["\n".join(a_batch().summary_lines()), "starting",
             "data tests: 118/120 passed in 4.2 s\ntest.c360.unique_x: fail: 2 rows",
             "data tests: 119/120 passed in 4.0 s",  # one test warned: dbt succeeded
             "\n".join(a_batch(failed_extract=True).summary_lines())]  # fmt: skip

    @op
    def run_microbatches(context):
        for line in lines:
            # As the stream logs them: data tests that failed as a warning.
            (context.log.warning if "fail:" in line else context.log.info)(line)

    @job(name="microbatch_stream")
    def stream():
        run_microbatches()

    @job(name="something_else")
    def other():
        run_microbatches()

    with DagsterInstance.ephemeral() as instance:
        log = StreamLog(instance)
        assert log.refresh() == []
        first = stream.execute_in_process(instance=instance).run_id
        other.execute_in_process(instance=instance)
        batches = log.refresh()
        assert [(b.run_id, b.number, b.succeeded) for b in batches] == [
            (first, 1, True),
            (first, 2, False),
        ]
        second = stream.execute_in_process(instance=instance).run_id
        batches = log.refresh()
        assert len(batches) == 4 and batches[-1].run_id == second
        assert [r.dagster_run.run_id for r in log.runs()] == [first, second]
        assert len(log.batches_of(first)) == 2
        tests = log.data_tests()
        assert [(t.run_id, t.number, t.passed, t.succeeded) for t in tests] == [
            (first, 1, 118, False),
            (first, 2, 119, True),
            (second, 1, 118, False),
            (second, 2, 119, True),
        ]
        assert not tests[0].succeeded and tests[0].failures == ("test.c360.unique_x: fail: 2 rows",)
        assert tests[0].began == pytest.approx(tests[0].ended - 4.2)


def test_a_probe_is_shown_by_the_first_raw_report_past_its_offset():
    assert kafka_positions("0:12,1:40,2:7") == {0: 12, 1: 40, 2: 7}
    assert kafka_positions("") == {}
    reports = [(10.0, {0: 5, 1: 3}), (11.0, {0: 9, 1: 3}), (12.0, {0: 9, 1: 8})]
    assert first_report_of(reports, partition=0, offset=4) == 10.0
    assert first_report_of(reports, partition=0, offset=5) == 11.0  # next offset 5: not landed
    assert first_report_of(reports, partition=1, offset=3) == 12.0
    assert first_report_of(reports, partition=2, offset=0) is None


def test_the_bench_table_names_the_slowest_models_of_the_logged_batches():
    from customer360.bench.report import table_lines
    from customer360.bench.stats import batch_stats

    message = "\n".join(a_batch().summary_lines())
    batches = [
        parse_batch_log(message, "run-1", n, at=1000.0 + n).as_bench_record() for n in (1, 2)
    ]
    result = {"mode": "dagster", "config": {"rate": 1000.0},
              "load": {"microbatch": batch_stats(batches)}}  # fmt: skip
    slowest = [line for line in table_lines(result) if line.strip().startswith("slowest models")]
    assert slowest == [
        "  slowest models   customer_360_base 250 ms, stg_weblogs 12 ms"
        " (mean wall time per batch; models replayed side by side overlap)"
    ]


def test_the_bench_table_says_when_the_data_tests_ran_during_the_load():
    from customer360.bench.report import table_lines

    def data_tests_line(tests: list[dict]) -> str:
        result = {"mode": "dagster", "config": {"rate": 1000.0},
                  "load": {"dagster": {"data_tests_during_load": tests}}}  # fmt: skip
        (line,) = [line for line in table_lines(result) if line.strip().startswith("data tests")]
        return line

    assert data_tests_line([]) == "  data tests       none ran during the load"
    ran = {"began_s": 8.3, "seconds": 33.6, "passed": 247, "run": 252}
    assert data_tests_line([ran]) == (
        "  data tests       247/252 passed, from +8 s into the load for 33.6 s"
    )
    warned = dict(ran, passed=248, not_passed={"warn": 4}, warned=["test.c360.r: warn: 3"])
    assert data_tests_line([warned]) == (
        "  data tests       248/252 passed, 4 warn, from +8 s into the load for 33.6 s"
    )


def test_a_sigint_during_a_duckdb_query_is_recognised_as_an_interrupt():
    """Ctrl-C on `c360 up` reaches the stream's run worker, often inside a DuckDB query, which
    swallows the KeyboardInterrupt and raises its own error: the stream reports it as the
    interruption it was (dagster_project/stream.py), so it must recognise DuckDB's error."""
    con = duckdb.connect()
    # pytest-xdist's workers ignore SIGINT; the run worker has Python's own handler.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    sigint = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    fallback = threading.Timer(30, con.interrupt)  # a failure, not a hang, if SIGINT is lost
    sigint.start()
    fallback.start()
    try:
        with pytest.raises(BaseException) as raised:
            con.execute("select count(*) from range(10000000000000) t(i) where i % 7 = 3")
    finally:
        sigint.cancel()
        fallback.cancel()
        signal.signal(signal.SIGINT, previous)
    assert is_duckdb_interrupt(raised.value), repr(raised.value)
    assert not is_duckdb_interrupt(RuntimeError("Binder Error: x"))


def test_the_data_tests_hold_dbt_before_the_next_batch_starts() -> None:
    """Once `start_when_due` returns, dbt is held for the tests: the next batch's replay sees it
    and runs in one transaction (MicroBatch._replay), so no test reads half a batch."""
    from types import SimpleNamespace

    from customer360.pipeline.dbt_invoker import dbt_in_use
    from dagster_project.stream import DataTests

    release = threading.Event()

    def data_tests_run(after_each_test=None):
        release.wait()  # the tests, running
        return DbtBuildResult(args=["test"], success=True, seconds=0.1)

    batch = SimpleNamespace(
        run_data_tests=data_tests_run,
        dbt=SimpleNamespace(manifest_dict=lambda: {"nodes": {}}, target_dir=""),
        replays_every_model=lambda: True,
    )
    context = SimpleNamespace(log=SimpleNamespace(info=print, warning=print))
    reported = []
    tests = DataTests(context, batch, SimpleNamespace(report=reported.append))
    tests._due = 0.0  # due now
    tests.start_when_due()
    try:
        assert tests.running and dbt_in_use()
    finally:
        release.set()
        tests.finish()
    assert not dbt_in_use() and reported == [[]]
