"""A purchase-propensity model chosen by hand, stored as the nightly training stores one.

Used by the hand-checked scoring test (tests/test_propensity.py) and by the scripted
incremental rounds (tests/test_dbt_incremental.py), where models arrive between builds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

MODEL_COLUMNS = (
    "model_version, trained_at, reference_at, intercept, feature, mean, scale, coefficient"
)
REFERENCE = dt.datetime(2026, 5, 31)
# More orders and recent visits raise the score, staleness lowers it.
HAND_MODEL = {
    "days_since_last_order": (120.0, 100.0, -0.9),  # (mean, scale, coefficient)
    "log_orders": (0.7, 0.6, 0.8),
    "log_spend": (2.5, 2.0, 0.3),
    "log_tenure_days": (5.0, 1.0, -0.2),
    "days_since_last_visit": (150.0, 120.0, -0.6),
    "days_since_last_email_open": (250.0, 120.0, -0.1),
}
HAND_INTERCEPT = -1.5


def store_model(warehouse: Path, version: str, model=HAND_MODEL, intercept=HAND_INTERCEPT):
    """Insert a model version into ml.propensity_coefficients, as the training asset does."""
    with duckdb.connect(str(warehouse)) as con:
        con.executemany(
            f"insert into ml.propensity_coefficients ({MODEL_COLUMNS})"
            " values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [version, REFERENCE, REFERENCE, intercept, feature, mean, scale, coefficient]
                for feature, (mean, scale, coefficient) in model.items()
            ],
        )
