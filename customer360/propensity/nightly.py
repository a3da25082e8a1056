"""The nightly job's work: train a model on the live warehouse, store it, rescore everyone.

Runs in the warehouse writer's process (the micro-batch's connection and dbt), as the nightly
reconciliation does: the Dagster job carries the writer tag, so the stream hands the warehouse
over first (dagster_project/propensity.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from customer360.pipeline.dbt_invoker import DbtBuildResult
from customer360.pipeline.microbatch import MicroBatch
from customer360.propensity.model import (
    MAX_EXAMPLES,
    TrainedModel,
    coefficients_table_exists,
    store,
    train,
)
from customer360.serving.publish import PublishResult

log = logging.getLogger(__name__)

SCORING_MODEL = "customer_propensity"


class RescoreFailed(RuntimeError):
    """The model was stored but dbt could not rebuild the scores; the message says why."""


@dataclass
class NightlyResult:
    model: TrainedModel
    rescore: DbtBuildResult
    scored_customers: int
    serving: PublishResult | None


def train_and_rescore(batch: MicroBatch, max_examples: int = MAX_EXAMPLES) -> NightlyResult:
    """Train on the warehouse, append the model, rebuild customer_propensity with
    --full-refresh (every customer scored by the new model), publish the serving copy."""
    con = batch.con
    if not coefficients_table_exists(con):  # a warehouse dbt has not built since this model
        batch.dbt.build(["stg_propensity_coefficients"]).raise_on_failure()
    model = train(con, max_examples=max_examples)
    store(con, model)
    log.info("propensity model %s stored; rescoring every customer", model.model_version)
    rescore = batch.dbt.build([SCORING_MODEL], extra=["--full-refresh"])
    if not rescore.success:
        raise RescoreFailed(
            f"model {model.model_version} is stored, but rebuilding {SCORING_MODEL} failed: "
            + "; ".join(rescore.failures or [str(rescore.error)])
            + " (the next micro-batch rescores every customer: its model version changed)"
        )
    scored = con.execute(
        f"select count(*) from marts.{SCORING_MODEL} where model_version = ?",
        [model.model_version],
    ).fetchone()[0]
    return NightlyResult(model, rescore, scored, batch.publish())
