"""The RFM tables of customer_traits (dbt_project.yml's vars) are well-formed.

The rules themselves are checked with hand-worked numbers in dbt's unit tests
(dbt/models/marts/customer_traits.yml: every segment and lifecycle boundary, read on a
pinned day) and on a built warehouse in test_dbt_hand_checked.py::test_customer_traits.
"""

from __future__ import annotations

import itertools

import yaml

from tests.dbt_fixtures.dbt_invoke import DBT_DIR

VARS = yaml.safe_load((DBT_DIR / "dbt_project.yml").read_text())["vars"]
SEGMENTS = [
    "Champions",
    "Loyal",
    "New",
    "Promising",
    "Need attention",
    "Can't lose",
    "At risk",
    "Hibernating",
    "Lost",
]


def test_rfm_thresholds_one_per_score_never_easier_for_a_higher_score() -> None:
    rows = sorted(VARS["rfm_thresholds"], key=lambda row: row["score"])
    assert [row["score"] for row in rows] == [1, 2, 3, 4, 5]
    # Score 1 takes every customer with an order.
    assert rows[0] == {
        "score": 1,
        "recency_within_days": None,
        "frequency_min_orders": 1,
        "monetary_min_value": 0,
    }
    for lower, higher in itertools.pairwise(rows):
        if lower["recency_within_days"] is not None:
            assert higher["recency_within_days"] < lower["recency_within_days"]
        assert higher["frequency_min_orders"] > lower["frequency_min_orders"]
        assert higher["monetary_min_value"] > lower["monetary_min_value"]


def segment_of(recency: int, frequency: int, monetary: int) -> str | None:
    for rule in sorted(VARS["rfm_segments"], key=lambda rule: rule["priority"]):
        if (
            rule["r_min"] <= recency <= rule["r_max"]
            and rule["f_min"] <= frequency <= rule["f_max"]
            and rule["m_min"] <= monetary <= rule["m_max"]
        ):
            return rule["segment"]
    return None


def test_every_score_combination_has_a_segment_and_every_segment_is_reachable() -> None:
    priorities = [rule["priority"] for rule in VARS["rfm_segments"]]
    assert len(set(priorities)) == len(priorities)
    reached = {}
    for scores in itertools.product(range(1, 6), repeat=3):
        segment = segment_of(*scores)
        assert segment is not None, f"scores {scores} have no segment"
        reached.setdefault(segment, scores)
    assert sorted(reached) == sorted(SEGMENTS)


def test_segments_read_as_documented() -> None:
    """A few cells of the grid, as the yml describes them."""
    assert segment_of(5, 5, 1) == "Champions"
    assert segment_of(3, 5, 5) == "Loyal"
    assert segment_of(5, 1, 5) == "New"
    assert segment_of(4, 1, 1) == "Promising"
    assert segment_of(3, 2, 1) == "Need attention"
    assert segment_of(2, 4, 4) == "Can't lose"
    assert segment_of(2, 4, 3) == "At risk"
    assert segment_of(1, 3, 5) == "At risk"
    assert segment_of(2, 2, 5) == "Hibernating"
    assert segment_of(1, 1, 1) == "Lost"
