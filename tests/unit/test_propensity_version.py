"""A new propensity model's version sorts after every stored one: dbt's customer_propensity
scores with the greatest version, whatever the training machine's clock says."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from customer360.propensity.model import COEFFICIENTS, model_version_for, version_after

TRAINED_AT = dt.datetime(2026, 6, 1, 3, 0, 0)


def stored(*versions: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"create schema ml; create table {COEFFICIENTS} (model_version varchar)")
    for version in versions:
        con.execute(f"insert into {COEFFICIENTS} values (?)", [version])
    return con


def test_the_training_time_when_it_sorts_after_the_stored_versions() -> None:
    assert model_version_for(stored(), TRAINED_AT) == "20260601T030000"
    assert model_version_for(stored("20260531T030000"), TRAINED_AT) == "20260601T030000"


@pytest.mark.parametrize(
    ("latest", "expected"),
    [
        # a second model in the same second
        ("20260601T030000", "20260601T030000-002"),
        ("20260601T030000-002", "20260601T030000-003"),
        # the clock behind the machine that trained the latest (it looped forever)
        ("20260601T030001", "20260601T030001-002"),
        ("20270101T000000-007", "20270101T000000-008"),
    ],
)
def test_a_clock_at_or_behind_the_latest_version_gives_the_next_one(latest, expected) -> None:
    version = model_version_for(stored("20250101T000000", latest), TRAINED_AT)
    assert version == expected
    assert version > latest


@pytest.mark.parametrize(
    "latest", ["20260601T030000-999", "20260601T030000-abc", "v1", "20260601T030000-"]
)
def test_the_next_version_sorts_after_any_stored_one(latest) -> None:
    assert version_after(latest) > latest
    assert version_after(version_after(latest)) > version_after(latest)
