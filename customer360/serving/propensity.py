"""The profile's purchase propensity, as marts.customer_propensity computed it.

One point query on the serving copy; no rule here: the score and its reasons are the mart's
(dbt/models/marts/customer_propensity.sql).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import duckdb

PROPENSITY_SQL = """
select propensity_score, model_version, scored_as_of, reason_1, reason_2, reason_3
from customer_propensity where customer_id = ?
"""


def profile_propensity(cur: duckdb.DuckDBPyConnection, customer_id: int) -> dict[str, Any] | None:
    """`{score, model_version, scored_as_of, reasons}`, or None before any model was trained
    (or in a serving copy published before the mart existed)."""
    try:
        row = cur.execute(PROPENSITY_SQL, [customer_id]).fetchone()
    except duckdb.CatalogException:
        return None
    if row is None:
        return None
    score, model_version, scored_as_of, *reasons = row
    return {
        "score": score,
        "model_version": model_version,
        "scored_as_of": None
        if scored_as_of is None
        else scored_as_of.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
        "reasons": [reason for reason in reasons if reason is not None],
    }
