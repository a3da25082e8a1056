"""Train the purchase-propensity model: will this customer order in the next 30 days?

A logistic regression (scikit-learn) on the six standardized features of `features.py`, small
enough to explain: each feature's contribution to a score is its coefficient times its
standardized value.

"Now" is the data's own: T = the latest order time in the warehouse (never after the clock).
- validation: fit on the customers as of T - 60 days (label: an order in the 30 days after),
  evaluate on the customers as of T - 30 days (label: an order up to T), a later period the fit
  never saw: AUC, Brier score, log loss and a reliability table by decile of the prediction;
- the model kept is then fit again, with the same features and settings, on the latest labelled
  period (as of T - 30 days), and scores with T as its reference time.

Training reads at most `max_examples` customers per period (a fixed sample by a hash of the
id), so its cost is bounded whatever the number of customers.

`train_and_store` appends the model to `ml.propensity_coefficients` (the table dbt's
customer_propensity reads; created by its staging view's pre-hook) and its metrics to
`ml.propensity_models`, in one transaction; then `rescore` rebuilds customer_propensity with
--full-refresh, so every customer carries the new model's score.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import duckdb

from customer360.propensity.features import (
    FEATURES,
    HORIZON_DAYS,
    Facts,
    cutoffs,
    facts_at,
    latest_order_at,
    matrix,
)

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

MAX_EXAMPLES = 50_000  # customers per period
COEFFICIENTS = "ml.propensity_coefficients"
MODELS = "ml.propensity_models"
# Each trained model and how it validated (written here; dbt does not read it).
MODELS_DDL = f"""
create schema if not exists ml;
create table if not exists {MODELS} (
    model_version varchar primary key,
    trained_at timestamp not null,
    reference_at timestamp not null,
    train_cutoff timestamp not null,
    validation_cutoff timestamp not null,
    train_examples bigint not null,
    validation_examples bigint not null,
    validation_auc double not null,
    validation_brier double not null,
    metrics json not null
)
"""


class NotEnoughHistory(RuntimeError):
    """The warehouse's history cannot train and validate a model; the message says why."""


@dataclass
class Reliability:
    """One decile of the validation examples by predicted probability."""

    examples: int
    mean_predicted: float
    observed_rate: float


@dataclass
class TrainedModel:
    model_version: str
    trained_at: datetime
    reference_at: datetime
    train_cutoff: datetime
    validation_cutoff: datetime
    intercept: float
    coefficients: dict[str, float]
    means: dict[str, float]
    scales: dict[str, float]
    train_examples: int
    train_positive_rate: float
    validation_examples: int
    validation_positive_rate: float
    validation_auc: float
    validation_brier: float
    validation_log_loss: float
    calibration_error: float  # expected calibration error over the deciles
    reliability: list[Reliability] = field(default_factory=list)
    final_examples: int = 0
    seconds: float = 0.0

    def metrics(self) -> dict:
        return {
            "horizon_days": HORIZON_DAYS,
            "train_cutoff": self.train_cutoff.isoformat(),
            "validation_cutoff": self.validation_cutoff.isoformat(),
            "train_examples": self.train_examples,
            "train_positive_rate": self.train_positive_rate,
            "validation_examples": self.validation_examples,
            "validation_positive_rate": self.validation_positive_rate,
            "validation_auc": self.validation_auc,
            "validation_brier": self.validation_brier,
            "validation_log_loss": self.validation_log_loss,
            "calibration_error": self.calibration_error,
            "reliability": [r.__dict__ for r in self.reliability],
            "final_examples": self.final_examples,
            "intercept": self.intercept,
            "coefficients": self.coefficients,
            "means": self.means,
            "scales": self.scales,
            "seconds": self.seconds,
        }

    def reliability_markdown(self) -> str:
        lines = ["| decile | examples | mean predicted | observed rate |", "|---|---|---|---|"]
        lines += [
            f"| {n} | {r.examples} | {r.mean_predicted:.3f} | {r.observed_rate:.3f} |"
            for n, r in enumerate(self.reliability, start=1)
        ]
        return "\n".join(lines)

    def coefficients_markdown(self) -> str:
        lines = ["| feature | coefficient | mean | scale |", "|---|---|---|---|"]
        lines += [
            f"| {f} | {self.coefficients[f]:+.4f} | {self.means[f]:.4f} | {self.scales[f]:.4f} |"
            for f in FEATURES
        ]
        lines.append(f"| (intercept) | {self.intercept:+.4f} | | |")
        return "\n".join(lines)


def _fit(rows: list[Facts]) -> tuple[StandardScaler, LogisticRegression]:
    # scikit-learn (~2 s to import) only where a model is trained: Dagster's code servers and
    # every run worker import this module with the definitions, and only the nightly job trains.
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    labels = [bool(r.ordered_next) for r in rows]
    scaler = StandardScaler().fit(matrix(rows))
    model = LogisticRegression(max_iter=1000).fit(scaler.transform(matrix(rows)), labels)
    return scaler, model


def _both_outcomes(rows: list[Facts], period: str) -> None:
    positives = sum(1 for r in rows if r.ordered_next)
    if not rows or positives in (0, len(rows)):
        raise NotEnoughHistory(
            f"the {period} period has {len(rows)} customers, {positives} of whom ordered in the "
            f"{HORIZON_DAYS} days after: a model needs customers who did and who did not (at "
            f"least {2 * HORIZON_DAYS} days of orders in the warehouse)"
        )


def reliability_table(labels: list[bool], predicted: list[float]) -> list[Reliability]:
    """The examples by predicted probability in ten groups of (nearly) equal size."""
    ranked = sorted(zip(predicted, labels, strict=True))
    groups = 10
    table = []
    for n in range(groups):
        part = ranked[n * len(ranked) // groups : (n + 1) * len(ranked) // groups]
        if part:
            table.append(
                Reliability(
                    examples=len(part),
                    mean_predicted=sum(p for p, _ in part) / len(part),
                    observed_rate=sum(1 for _, y in part if y) / len(part),
                )
            )
    return table


def model_version_for(con: duckdb.DuckDBPyConnection, trained_at: datetime) -> str:
    """'YYYYMMDDTHHMMSS' of the training time, or, when that does not sort after the latest
    stored version (a second model in the same second, or a clock behind the one that trained
    the latest), the latest's next numbered version: dbt scores with the greatest version, so a
    new model must sort after every stored one."""
    version = trained_at.strftime("%Y%m%dT%H%M%S")
    latest = con.execute(f"select max(model_version) from {COEFFICIENTS}").fetchone()[0]
    if latest is None or version > latest:
        return version
    return version_after(latest)


def version_after(latest: str) -> str:
    """A version that sorts after `latest` (as strings, as dbt's max() compares them): its time
    with the next number ('T' -> 'T-002', 'T-002' -> 'T-003'), or, when that number no longer
    sorts after it ('T-999' -> 'T-1000' sorts before), `latest` with '-002' appended (a string
    sorts after its own prefix)."""
    base, dash, number = latest.partition("-")
    if not dash:
        return f"{latest}-002"
    if number.isdigit():
        candidate = f"{base}-{int(number) + 1:03d}"
        if candidate > latest:
            return candidate
    return f"{latest}-002"


def train(
    con: duckdb.DuckDBPyConnection,
    max_examples: int = MAX_EXAMPLES,
    trained_at: datetime | None = None,
) -> TrainedModel:
    """Fit, validate and refit the model on the warehouse open on `con` (not stored)."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    started = time.monotonic()
    trained_at = (trained_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    reference_at = latest_order_at(con)
    if reference_at is None:
        raise NotEnoughHistory("the warehouse holds no orders yet")
    train_cutoff, validation_cutoff = cutoffs(reference_at)
    train_rows = facts_at(con, train_cutoff, max_examples)
    validation_rows = facts_at(con, validation_cutoff, max_examples)
    _both_outcomes(train_rows, f"training (as of {train_cutoff:%Y-%m-%d %H:%M})")
    _both_outcomes(validation_rows, f"validation (as of {validation_cutoff:%Y-%m-%d %H:%M})")

    scaler, model = _fit(train_rows)
    labels = [bool(r.ordered_next) for r in validation_rows]
    predicted = model.predict_proba(scaler.transform(matrix(validation_rows)))[:, 1].tolist()
    reliability = reliability_table(labels, predicted)
    calibration_error = sum(
        r.examples * abs(r.mean_predicted - r.observed_rate) for r in reliability
    ) / len(labels)

    # The model kept: the same fit on the latest labelled period.
    final_scaler, final_model = _fit(validation_rows)
    return TrainedModel(
        model_version=model_version_for(con, trained_at),
        trained_at=trained_at,
        reference_at=reference_at,
        train_cutoff=train_cutoff,
        validation_cutoff=validation_cutoff,
        intercept=float(final_model.intercept_[0]),
        coefficients={f: float(c) for f, c in zip(FEATURES, final_model.coef_[0], strict=True)},
        means={f: float(m) for f, m in zip(FEATURES, final_scaler.mean_, strict=True)},
        scales={f: float(s) for f, s in zip(FEATURES, final_scaler.scale_, strict=True)},
        train_examples=len(train_rows),
        train_positive_rate=sum(1 for r in train_rows if r.ordered_next) / len(train_rows),
        validation_examples=len(validation_rows),
        validation_positive_rate=sum(labels) / len(labels),
        validation_auc=float(roc_auc_score(labels, predicted)),
        validation_brier=float(brier_score_loss(labels, predicted)),
        validation_log_loss=float(log_loss(labels, predicted, labels=[False, True])),
        calibration_error=calibration_error,
        reliability=reliability,
        final_examples=len(validation_rows),
        seconds=time.monotonic() - started,
    )


def store(con: duckdb.DuckDBPyConnection, model: TrainedModel) -> None:
    """Append the model to ml.propensity_coefficients and ml.propensity_models, together."""
    con.execute(MODELS_DDL)
    con.execute("begin")
    try:
        con.executemany(
            f"insert into {COEFFICIENTS} (model_version, trained_at, reference_at, intercept, "
            "feature, mean, scale, coefficient) values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    model.model_version,
                    model.trained_at,
                    model.reference_at,
                    model.intercept,
                    feature,
                    model.means[feature],
                    model.scales[feature],
                    model.coefficients[feature],
                ]
                for feature in FEATURES
            ],
        )
        con.execute(
            f"insert into {MODELS} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                model.model_version,
                model.trained_at,
                model.reference_at,
                model.train_cutoff,
                model.validation_cutoff,
                model.train_examples,
                model.validation_examples,
                model.validation_auc,
                model.validation_brier,
                json.dumps(model.metrics()),
            ],
        )
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def coefficients_table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where database_name = current_database() "
            "and schema_name = 'ml' and table_name = 'propensity_coefficients'"
        ).fetchone()[0]
    )


def probability(model: TrainedModel, features: list[float]) -> float:
    """The model's probability for one row of features (what customer_propensity computes)."""
    logit = model.intercept + sum(
        model.coefficients[f] * (value - model.means[f]) / model.scales[f]
        for f, value in zip(FEATURES, features, strict=True)
    )
    return 1.0 / (1.0 + math.exp(-logit))
