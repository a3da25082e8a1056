"""Which statements the micro-batch may replay, and which models a batch builds."""

from __future__ import annotations

from customer360.pipeline.model_replay import ModelReplay, model_statements, models_to_build

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
