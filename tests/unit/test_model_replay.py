"""Which statements the micro-batch may replay, and which models a batch builds."""

from __future__ import annotations

import os
import signal
import threading

import duckdb
import pytest

from customer360.pipeline.model_replay import (
    ModelReplay,
    ReplayError,
    model_inputs,
    model_statements,
    models_to_build,
)

INSERT = "insert into m select 1"
FIRST = ['create temporary table "m__dbt_tmp20261202070055474003" as select 1', INSERT]
SECOND = ['create temporary table "m__dbt_tmp20261202070100000001" as select 1', INSERT]


def test_statements_by_model_without_transaction_control_or_other_nodes() -> None:
    queries = [
        ("", "select schema_name from information_schema.schemata"),
        ("model.p.m", "BEGIN"),
        ("model.p.m", FIRST[0]),
        ("test.p.not_null_m_id", "select 1"),
        ("model.p.m", FIRST[1]),
        ("model.p.m", "COMMIT"),
    ]
    assert model_statements(queries) == {"model.p.m": FIRST}


def test_replayable_once_two_builds_in_a_row_agree() -> None:
    replay = ModelReplay()
    replay.learn({"model.p.m": FIRST})
    assert not replay.can_replay(["model.p.m"])
    replay.learn({"model.p.m": SECOND})  # only the temporary relation's time stamp differs
    assert replay.can_replay(["model.p.m"])
    assert not replay.can_replay(["model.p.m", "model.p.other"])


def test_statements_that_change_between_builds_are_not_replayed() -> None:
    replay = ModelReplay()
    replay.learn({"model.p.m": ["delete from m where batch_id > 41"]})
    replay.learn({"model.p.m": ["delete from m where batch_id > 42"]})
    assert not replay.can_replay(["model.p.m"])
    replay.learn({"model.p.m": ["delete from m where batch_id > 42"]})
    assert replay.can_replay(["model.p.m"])
    replay.learn({"model.p.m": ["delete from m where batch_id > 43"]})
    assert not replay.can_replay(["model.p.m"])
    replay.learn({"model.p.m": ["delete from m where batch_id > 43"]})
    replay.forget()
    assert not replay.can_replay(["model.p.m"])


def node(depends_on: list[str], materialized: str = "incremental") -> dict:
    return {"depends_on": {"nodes": depends_on}, "config": {"materialized": materialized}}


def test_models_to_build_are_the_tables_downstream_dependencies_first() -> None:
    manifest = {
        "sources": {
            "source.p.raw.users": {"source_name": "raw", "name": "users"},
            "source.p.raw.weblogs": {"source_name": "raw", "name": "weblogs"},
        },
        "nodes": {
            "model.p.stg_users": node(["source.p.raw.users"]),
            "model.p.stg_weblogs": node(["source.p.raw.weblogs"]),
            "model.p.customers": node(["model.p.stg_users"], "view"),
            "model.p.base": node(["model.p.stg_users", "model.p.stg_weblogs"]),
            "model.p.wide": node(["model.p.base"], "view"),
            "test.p.t": node(["model.p.base"]),
        },
        "child_map": {
            "source.p.raw.users": ["model.p.stg_users"],
            "source.p.raw.weblogs": ["model.p.stg_weblogs"],
            "model.p.stg_users": ["model.p.base", "model.p.customers"],
            "model.p.stg_weblogs": ["model.p.base"],
            "model.p.base": ["model.p.wide", "test.p.t"],
        },
    }
    assert models_to_build(manifest, ["users"]) == ["model.p.stg_users", "model.p.base"]
    assert models_to_build(manifest, ["weblogs", "users"]) == [
        "model.p.stg_users",
        "model.p.stg_weblogs",
        "model.p.base",
    ]
    assert models_to_build(manifest, []) == []


def learnt(statements: dict[str, list[str]]) -> ModelReplay:
    replay = ModelReplay()
    for _ in range(2):
        replay.learn(statements)
    return replay


def test_a_model_runs_once_the_models_it_reads_have_committed() -> None:
    """a and b side by side, c after both; each model's rows committed with it."""
    con = duckdb.connect()
    con.execute("create table a (x int); create table b (x int); create table c (x int)")
    replay = learnt(
        {
            "model.p.a": ["insert into a select range from range(100000)"],
            "model.p.b": ["insert into b select range from range(1000)"],
            "model.p.c": [
                "insert into c select (select count(*) from a) + (select count(*) from b)"
            ],
        }
    )
    inputs = {"model.p.a": set(), "model.p.b": set(), "model.p.c": {"model.p.a", "model.p.b"}}
    for _ in range(3):  # the second and third runs order the models by the first's seconds
        con.execute("delete from a; delete from b; delete from c")
        seconds = replay.replay(con, ["model.p.a", "model.p.b", "model.p.c"], inputs)
        assert set(seconds) == {"model.p.a", "model.p.b", "model.p.c"}
        assert con.execute("select x from c").fetchall() == [(101000,)]


def test_several_statements_sent_in_one_call_are_replayed_in_order() -> None:
    """dbt sends a hook's statements in one call; the replay, which parses them once when it
    learns them, runs each of them, in order, at every replay."""
    con = duckdb.connect()
    con.execute("create table t (x int)")
    replay = learnt(
        {
            "model.p.m": [
                "insert into t values (1)",
                "create table if not exists marks (n int); delete from marks;"
                " insert into marks select count(*) from t",
            ]
        }
    )
    for expected in (1, 2):
        replay.replay(con, ["model.p.m"], {"model.p.m": set()})
        assert con.execute("select n from marks").fetchall() == [(expected,)]


def test_a_failing_model_keeps_nothing_the_models_after_it_do_not_run() -> None:
    con = duckdb.connect()
    con.execute("create table t (model varchar)")
    replay = learnt(
        {
            "model.p.a": ["insert into t values ('a')"],
            "model.p.b": ["insert into t values ('b')", "select nope"],
            "model.p.c": ["insert into t values ('c')"],
        }
    )
    inputs = {"model.p.a": set(), "model.p.b": {"model.p.a"}, "model.p.c": {"model.p.b"}}
    with pytest.raises(ReplayError, match="model.p.b"):
        replay.replay(con, ["model.p.a", "model.p.b", "model.p.c"], inputs)
    assert con.execute("select model from t").fetchall() == [("a",)]
    # The connections are closed: nothing is left open on the database.
    assert con.execute("select count(*) from duckdb_tables() where temporary").fetchone() == (0,)


def test_models_read_together_are_one_transaction() -> None:
    """The models `together` (and those they read) run first in one transaction: one failing
    keeps nothing of the others."""
    con = duckdb.connect()
    con.execute("create table t (model varchar)")
    statements = {
        "model.p.stg_a": ["insert into t values ('stg_a')"],
        "model.p.stg_b": ["insert into t values ('stg_b')", "select nope"],
        "model.p.mart": ["insert into t values ('mart')"],
    }
    replay = learnt(statements)
    inputs = {
        "model.p.stg_a": {"source.p.raw.a"},
        "model.p.stg_b": {"source.p.raw.b"},
        "model.p.mart": {"model.p.stg_a", "model.p.stg_b"},
    }
    models = list(statements)
    with pytest.raises(ReplayError, match="model.p.stg_b"):
        replay.replay(con, models, inputs, together=["model.p.stg_a", "model.p.stg_b"])
    assert con.execute("select count(*) from t").fetchone() == (0,)

    # Without: each its own transaction (stg_a is kept if it ran before stg_b failed).
    with pytest.raises(ReplayError, match="model.p.stg_b"):
        replay.replay(con, models, inputs)
    assert set(con.execute("select model from t").fetchall()) <= {("stg_a",)}


def test_temporary_relations_end_with_the_replay() -> None:
    """dbt-duckdb leaves a model's temporary relation to the end of its connection, under the
    same name on every replay."""
    con = duckdb.connect()
    con.execute("create table m (x int)")
    replay = learnt(
        {
            "model.p.m": [
                'create temporary table "m__dbt_tmp1" as select 1 as x',
                'insert into m select x from "m__dbt_tmp1"',
            ]
        }
    )
    for _ in range(2):
        replay.replay(con, ["model.p.m"], {"model.p.m": set()})
    assert con.execute("select count(*) from m").fetchone() == (2,)


def test_an_interrupted_replay_stops_every_connection() -> None:
    """A Ctrl-C (or a run's termination) reaching this thread mid-replay stops the other
    connection's model too, and nothing after them starts."""
    con = duckdb.connect()
    con.execute("create table t (model varchar)")
    endless = "insert into t select 'endless' from range(10000000000) where hash(range) = 1"
    replay = learnt(
        {
            "model.p.a": [endless],
            "model.p.b": [endless],
            "model.p.c": ["insert into t values ('c')"],
        }
    )
    inputs = {"model.p.a": set(), "model.p.b": set(), "model.p.c": {"model.p.a", "model.p.b"}}
    threads_before = set(threading.enumerate())
    # Python's own handler, as in the run worker: a process started in the background by a
    # shell without job control (a CI runner's `cmd &`) inherits SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    ctrl_c = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    ctrl_c.start()
    try:
        with pytest.raises((KeyboardInterrupt, RuntimeError)):  # DuckDB's "Query interrupted"
            replay.replay(con, ["model.p.a", "model.p.b", "model.p.c"], inputs)
    finally:
        ctrl_c.cancel()
        ctrl_c.join()
        signal.signal(signal.SIGINT, previous)
    assert set(threading.enumerate()) <= threads_before
    assert con.execute("select count(*) from t").fetchone() == (0,)


def test_model_inputs_reach_through_views() -> None:
    manifest = {
        "nodes": {
            "model.p.stg": node(["source.p.raw.users"]),
            "model.p.v": node(["model.p.stg"], "view"),
            "model.p.mart": node(["model.p.v"]),
        },
    }
    assert model_inputs(manifest, ["model.p.stg", "model.p.mart"]) == {
        "model.p.stg": {"source.p.raw.users"},
        "model.p.mart": {"model.p.stg"},
    }
