"""The micro-batch's replay of dbt's statements (customer360/pipeline/model_replay.py).

That replayed builds equal a full refresh, on the scripted and random rounds, is checked by
tests/test_serving_publish.py, which builds its rounds with the micro-batch's own step.
"""

from __future__ import annotations

import duckdb
import pytest

from customer360.pipeline.model_replay import ModelReplay, ReplayError


def test_a_failing_statement_keeps_nothing_and_names_the_model() -> None:
    con = duckdb.connect()
    con.execute("create table t (x int)")
    replay = ModelReplay()
    for _ in range(2):
        replay.learn({"model.p.a": ["insert into t values (1)"], "model.p.b": ["select nope"]})
    assert replay.can_replay(["model.p.a", "model.p.b"])
    with pytest.raises(ReplayError, match="model.p.b"):
        replay.replay(con, ["model.p.a", "model.p.b"])
    assert con.execute("select count(*) from t").fetchone() == (0,)
