"""The fingerprint of a parsed dbt project (dbt_invoker.manifest_fingerprint): the same for two
parses of the same files, different when anything dbt renders differs. tests/test_dbt_replay.py
checks it on two real parses of the project."""

from __future__ import annotations

import copy

from customer360.pipeline.dbt_invoker import manifest_fingerprint


def parsed(at: float, invocation: str) -> dict:
    return {
        "metadata": {
            "dbt_version": "1.11.16",
            "generated_at": f"2026-12-07T22:33:{at:02.0f}Z",
            "invocation_id": invocation,
            "invocation_started_at": f"2026-12-07T22:33:{at:02.0f}Z",
            "run_started_at": f"2026-12-07T22:33:{at:02.0f}+00:00",
            "project_name": "p",
        },
        "nodes": {
            "test.p.t": {
                "created_at": at,
                "raw_code": "{{ test_not_null(**_dbt_generic_test_kwargs) }}",
                "config": {"severity": "ERROR", "warn_if": "!= 0", "meta": {"created_at": 1}},
                "database": "warehouse",
            }
        },
        "macros": {
            "macro.p.m": {"created_at": at + 0.1, "macro_sql": "{% macro m() %}1{% endmacro %}"}
        },
        "disabled": {"model.p.old": [{"created_at": at, "raw_code": "select 1"}]},
        "parent_map": {"test.p.t": ["model.p.a"]},
    }


def test_two_parses_of_the_same_project_have_one_fingerprint() -> None:
    assert manifest_fingerprint(parsed(10, "a")) == manifest_fingerprint(parsed(18, "b"))


def test_anything_dbt_renders_from_changes_it() -> None:
    base = manifest_fingerprint(parsed(10, "a"))
    for change in (
        lambda m: m["nodes"]["test.p.t"].update(raw_code="select 1"),
        lambda m: m["nodes"]["test.p.t"]["config"].update(warn_if=">10"),
        lambda m: m["nodes"]["test.p.t"]["config"]["meta"].update(created_at=2),
        lambda m: m["nodes"]["test.p.t"].update(database="other"),  # another warehouse name
        lambda m: m["macros"]["macro.p.m"].update(macro_sql="{% macro m() %}2{% endmacro %}"),
        lambda m: m["disabled"]["model.p.old"][0].update(raw_code="select 2"),
        lambda m: m["parent_map"]["test.p.t"].append("model.p.b"),
        lambda m: m["metadata"].update(dbt_version="1.11.17"),
    ):
        changed = copy.deepcopy(parsed(10, "a"))
        change(changed)
        assert manifest_fingerprint(changed) != base
