"""A purchase-propensity model chosen by hand, stored as the nightly training stores one.

Used by the hand-checked scoring test (tests/test_propensity.py), the scripted incremental and
publication rounds (tests/test_dbt_incremental.py, where models arrive between builds) and the
dashboard test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from customer360.propensity.model import TrainedModel, store

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


def hand_trained_model(
    version: str,
    model: dict[str, tuple[float, float, float]] = HAND_MODEL,
    intercept: float = HAND_INTERCEPT,
    reference_at: dt.datetime = REFERENCE,
) -> TrainedModel:
    """A model with the given (mean, scale, coefficient) per feature; no validation figures."""
    return TrainedModel(
        model_version=version,
        trained_at=reference_at,
        reference_at=reference_at,
        train_cutoff=reference_at,
        validation_cutoff=reference_at,
        intercept=intercept,
        coefficients={f: c for f, (_, _, c) in model.items()},
        means={f: m for f, (m, _, _) in model.items()},
        scales={f: s for f, (_, s, _) in model.items()},
        train_examples=0,
        train_positive_rate=0.0,
        validation_examples=0,
        validation_positive_rate=0.0,
        validation_auc=0.5,
        validation_brier=0.25,
        validation_log_loss=0.7,
        calibration_error=0.0,
    )


def store_model(warehouse: Path, version: str, model=HAND_MODEL, intercept=HAND_INTERCEPT):
    """Store a model version in the warehouse as the training asset does."""
    with duckdb.connect(str(warehouse)) as con:
        store(con, hand_trained_model(version, model, intercept))
