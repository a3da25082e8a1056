"""The stream's data tests replayed without dbt (customer360/pipeline/data_test_replay.py): what
is learnt from dbt's statements, dbt's verdict over a test's row, and when the replay gives up.
Against a real DuckDB database; tests/test_dbt_replay.py compares a replay with dbt's own run."""

from __future__ import annotations

import duckdb
import pytest

from customer360.pipeline.data_test_replay import DataTestReplay, LearntTest, verdict

# A data test's query as dbt's get_test_sql sends it, over the rows the test finds.
VERDICT_SQL = """select count(*) as failures, count(*) {warn_if} as should_warn,
    count(*) {error_if} as should_error from ({rows}) dbt_internal_test"""


def verdict_sql(rows: str, warn_if: str = "!= 0", error_if: str = "!= 0") -> str:
    return VERDICT_SQL.format(rows=rows, warn_if=warn_if, error_if=error_if)


def manifest_of(**severities: str) -> dict:
    return {
        "nodes": {
            f"test.p.{name}": {
                "config": {"severity": severity, "warn_if": "!= 0", "error_if": "!= 0"}
            }
            for name, severity in severities.items()
        }
    }


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create table orders as select range as id, range % 3 as status from range(10)")
    yield con
    con.close()


def test_the_last_statement_of_each_test_is_learnt_and_dbts_verdict_is_given(con) -> None:
    project = object()
    queries = [
        ("model.p.orders", "create table x as select 1"),  # not a test
        ("test.p.ids_unique", "begin"),
        # a catalog read dbt credited to the first test needing its cache
        ("test.p.ids_unique", "select database_name, type from duckdb_databases()"),
        ("test.p.ids_unique", verdict_sql("select id from orders group by id having count(*) > 1")),
        ("test.p.no_status_2", "begin"),
        ("test.p.no_status_2", verdict_sql("select id from orders where status = 2")),
        ("test.p.no_status_1_warned", "BEGIN;"),
        ("test.p.no_status_1_warned", verdict_sql("select id from orders where status = 1")),
    ]
    tests_run = [
        ("test.p.ids_unique", "pass"),
        ("test.p.no_status_2", "fail"),
        ("test.p.no_status_1_warned", "warn"),
    ]
    replay = DataTestReplay()
    replay.learn(
        project,
        manifest_of(ids_unique="ERROR", no_status_2="error", no_status_1_warned="warn"),
        tests_run,
        queries,
    )
    assert replay.can_replay(project) and not replay.can_replay(object())  # a new parse
    assert [t.unique_id for t in replay.tests] == [u for u, _ in tests_run]
    assert all(t.sql.startswith("select count(*) as failures") for t in replay.tests)

    paced = []
    outcomes = replay.replay(con, after_each_test=lambda: paced.append(1))
    assert [(o.unique_id, o.status, o.failures) for o in outcomes] == [
        ("test.p.ids_unique", "pass", 0),
        ("test.p.no_status_2", "fail", 3),
        ("test.p.no_status_1_warned", "warn", 3),
    ]
    assert outcomes[1].message == "Got 3 results, configured to fail if != 0"
    assert outcomes[2].message == "Got 3 results, configured to warn if != 0"
    assert len(paced) == 3
    assert replay.can_replay(project)  # verdicts, even failing ones, keep the replay

    # The rows change: so do the verdicts.
    con.execute("delete from orders where status = 2")
    con.execute("insert into orders values (1, 0)")
    outcomes = replay.replay(con)
    assert [(o.status, o.failures) for o in outcomes] == [("fail", 1), ("pass", 0), ("warn", 3)]
    assert outcomes[0].message == "Got 1 result, configured to fail if != 0"


def test_dbts_rule_over_the_row() -> None:
    error = LearntTest("test.p.t", "", "ERROR", "!= 0", ">10")
    warn = LearntTest("test.p.t", "", "WARN", "!= 0", "!= 0")
    assert verdict(error, 0, False, False) == ("pass", None)
    assert verdict(error, 5, True, False) == ("warn", "Got 5 results, configured to warn if != 0")
    assert verdict(error, 11, True, True) == ("fail", "Got 11 results, configured to fail if >10")
    assert verdict(warn, 11, True, True)[0] == "warn"  # severity warn never fails


def test_a_run_with_an_errored_or_unseen_test_teaches_nothing(con) -> None:
    project, manifest = object(), manifest_of(a="ERROR", b="ERROR")
    sent = [("test.p.a", verdict_sql("select 1 where false"))]
    replay = DataTestReplay()
    replay.learn(project, manifest, [("test.p.a", "pass"), ("test.p.b", "pass")], sent)
    assert not replay.can_replay(project)  # b sent no query
    replay.learn(project, manifest, [("test.p.a", "error")], sent)
    assert not replay.can_replay(project)
    replay.learn(project, manifest, [], [])
    assert not replay.can_replay(project)


def test_a_query_that_fails_or_is_not_a_verdict_is_an_error_and_the_replay_forgets(con) -> None:
    project = object()
    replay = DataTestReplay()
    replay.learn(
        project,
        manifest_of(gone="ERROR", shape="ERROR", fine="ERROR"),
        [("test.p.gone", "pass"), ("test.p.shape", "pass"), ("test.p.fine", "pass")],
        [
            ("test.p.gone", verdict_sql("select * from dropped_since")),
            ("test.p.shape", "select 1 as failures"),
            ("test.p.fine", verdict_sql("select 1 where false")),
        ],
    )
    outcomes = replay.replay(con)
    assert [o.status for o in outcomes] == ["error", "error", "pass"]  # the others still run
    assert "dropped_since" in outcomes[0].message
    assert "not one row of ('failures', 'should_warn', 'should_error')" in outcomes[1].message
    assert not replay.can_replay(project)  # dbt runs the next one, and says why
    # Each test read in a transaction of its own that it ended: the connection is free.
    con.execute("begin")
    con.execute("rollback")


def learnt_and_kept(kept_at, fingerprint: str = "parse-1") -> DataTestReplay:
    replay = DataTestReplay(kept_at=kept_at)
    replay.learn(
        object(),
        manifest_of(no_status_2="ERROR", none_above_9="ERROR"),
        [("test.p.no_status_2", "fail"), ("test.p.none_above_9", "pass")],
        [
            ("test.p.no_status_2", verdict_sql("select id from orders where status = 2")),
            ("test.p.none_above_9", verdict_sql("select id from orders where id > 9")),
        ],
        fingerprint,
    )
    return replay


def test_what_is_learnt_is_kept_for_the_next_process_of_the_same_parse(con, tmp_path) -> None:
    kept_at = tmp_path / "warehouse.duckdb.data_tests.json"
    learnt = learnt_and_kept(kept_at)
    expected = [(o.unique_id, o.status, o.failures) for o in learnt.replay(con)]
    assert expected == [("test.p.no_status_2", "fail", 3), ("test.p.none_above_9", "pass", 0)]

    # The next process parses the project again: another manifest object, the same fingerprint.
    project = object()
    recalled = DataTestReplay(kept_at=kept_at)
    assert recalled.recall(project, "parse-1") and recalled.can_replay(project)
    assert recalled.tests == learnt.tests
    assert [(o.unique_id, o.status, o.failures) for o in recalled.replay(con)] == expected

    # A parse of another project (an edited model, another dbt) recalls nothing.
    other = DataTestReplay(kept_at=kept_at)
    assert not other.recall(project, "parse-2") and not other.can_replay(project)
    # Nor does a replay with nowhere to keep, or a run that taught nothing.
    assert not DataTestReplay().recall(project, "parse-1")
    other.learn(project, manifest_of(a="ERROR"), [("test.p.a", "error")], [], "parse-2")
    assert not kept_at.exists() and not DataTestReplay(kept_at=kept_at).recall(project, "parse-1")


def test_a_replay_that_errs_forgets_the_kept_tests_too(con, tmp_path) -> None:
    kept_at = tmp_path / "kept.json"
    learnt_and_kept(kept_at)
    con.execute("drop table orders")
    replay = DataTestReplay(kept_at=kept_at)
    assert replay.recall(project := object(), "parse-1")
    assert {o.status for o in replay.replay(con)} == {"error"}
    assert not replay.can_replay(project) and not kept_at.exists()  # dbt runs the next one


@pytest.mark.parametrize("text", ["", "{not json", '{"fingerprint": "parse-1"}', '{"tests": []}',
                                  '{"fingerprint": "parse-1", "tests": [{"sql": "x"}]}',
                                  '{"fingerprint": "parse-1", "tests": []}'])  # fmt: skip
def test_a_kept_file_that_cannot_be_read_recalls_nothing(tmp_path, text) -> None:
    kept_at = tmp_path / "kept.json"
    kept_at.write_text(text)
    replay = DataTestReplay(kept_at=kept_at)
    assert not replay.recall(project := object(), "parse-1") and not replay.can_replay(project)
