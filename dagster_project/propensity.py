"""Nightly: train the purchase-propensity model, store it, rescore every customer.

The asset `ml/propensity_model` is the model dbt's customer_propensity scores with (the dbt
source ml.propensity_coefficients names it in `meta.dagster.asset_key`, so lineage is one
graph: staging -> the model -> marts/customer_propensity). Its materialization's metadata says
how the model validated on a later period than it was fit on (AUC, Brier score, calibration
by decile) and what it is (coefficients, means and scales).

It writes the warehouse, so its job carries the writer tag like the nightly reconciliation:
queued behind the stream run, which sees a writer waiting and ends after the batch in hand;
the job runs in the writer's place; the sensor starts the stream again once it is done.
"""

from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetSelection,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
    in_process_executor,
)

from customer360.propensity.features import HORIZON_DAYS
from customer360.propensity.model import NotEnoughHistory
from customer360.propensity.nightly import SCORING_MODEL, train_and_rescore
from dagster_project.resources import MicroBatchResource

PROPENSITY_KEY = AssetKey(["ml", "propensity_model"])
PROPENSITY_JOB = "propensity_training"
# What training reads (customer360/propensity/features.py): customer_360_base's sources of the
# features, identity stitching included (guest sales matched by email and their line items,
# the anonymous events with the customer stitching gives them and since when).
TRAINING_INPUTS = [
    AssetKey(["intermediate", "int_customers"]),
    AssetKey(["staging", "stg_online_orders"]),
    AssetKey(["staging", "stg_instore_orders"]),
    AssetKey(["intermediate", "int_guest_order_owners"]),
    AssetKey(["intermediate", "int_customer_order_items"]),
    AssetKey(["staging", "stg_weblogs"]),
    AssetKey(["intermediate", "int_anonymous_event_owners"]),
    AssetKey(["staging", "stg_marketing_emails"]),
]


@asset(
    key=PROPENSITY_KEY,
    deps=TRAINING_INPUTS,
    group_name="ml",
    kinds={"scikit-learn", "duckdb"},
    description=f"Purchase propensity: a logistic regression of 'orders in the next "
    f"{HORIZON_DAYS} days' on six standardized features (recency, orders, spend, tenure, "
    "website and email recency), fit as of 60 days before the latest order and validated on "
    "the 30 days after that (AUC, Brier, calibration by decile in the metadata), refit on the "
    "latest period and stored in ml.propensity_coefficients; then every customer is rescored "
    "(marts.customer_propensity rebuilt with --full-refresh) and the serving copy published. "
    "A warehouse with too little history to train on is skipped (no materialization; an "
    "observation and the run's log say why).",
    # Materialized only when a model was trained (a young warehouse has none to train).
    output_required=False,
)
def propensity_model(
    context: AssetExecutionContext, pipeline: MicroBatchResource
) -> Iterator[MaterializeResult]:
    batch = pipeline.microbatch()
    try:
        result = train_and_rescore(batch)
    except NotEnoughHistory as exc:
        # A young or small warehouse (too few days of orders, or of buyers, to fit and validate
        # on) cannot train one yet, and nothing is wrong: the run succeeds without a
        # materialization, the customers keep the model they had (or none), and the asset's
        # page says why.
        reason = f"no model trained: {exc}"
        context.log.warning(reason)
        context.log_event(AssetObservation(asset_key=PROPENSITY_KEY, metadata={"skipped": reason}))
        return
    model = result.model
    context.log.info(
        f"propensity model {model.model_version}: validation AUC {model.validation_auc:.3f}, "
        f"Brier {model.validation_brier:.4f}; {result.scored_customers} customers rescored"
    )
    context.log_event(
        AssetMaterialization(
            AssetKey(["marts", SCORING_MODEL]),
            metadata={
                "dbt": "rebuilt with --full-refresh by the propensity training",
                "model_version": model.model_version,
                "customers scored": result.scored_customers,
            },
        )
    )
    yield MaterializeResult(
        metadata={
            "model_version": model.model_version,
            "validation_auc": MetadataValue.float(model.validation_auc),
            "validation_brier": MetadataValue.float(model.validation_brier),
            "validation_log_loss": MetadataValue.float(model.validation_log_loss),
            "calibration_error": MetadataValue.float(model.calibration_error),
            "reliability by decile": MetadataValue.md(model.reliability_markdown()),
            "coefficients": MetadataValue.md(model.coefficients_markdown()),
            "reference_at": MetadataValue.text(model.reference_at.isoformat()),
            "train_cutoff": MetadataValue.text(model.train_cutoff.isoformat()),
            "validation_cutoff": MetadataValue.text(model.validation_cutoff.isoformat()),
            "train_examples": model.train_examples,
            "train_positive_rate": MetadataValue.float(model.train_positive_rate),
            "validation_examples": model.validation_examples,
            "validation_positive_rate": MetadataValue.float(model.validation_positive_rate),
            "kept model": MetadataValue.text(
                f"refit on the {model.final_examples} customers as of the validation cutoff "
                "(the latest labelled period), same features and settings"
            ),
            "customers scored": result.scored_customers,
            "training seconds": round(model.seconds, 2),
            "rescore seconds": round(result.rescore.seconds, 2),
        }
    )


def build_propensity(writer_tags: dict[str, str]):
    """The asset's job (a warehouse writer) and its nightly schedule."""
    job = define_asset_job(
        PROPENSITY_JOB,
        selection=AssetSelection.assets(propensity_model),
        executor_def=in_process_executor,
        tags=writer_tags,
        description="Train the purchase-propensity model on the warehouse's history, store it, "
        "rescore every customer and publish. Queues until the stream yields the warehouse.",
    )
    schedule = ScheduleDefinition(
        name="propensity_training_schedule",
        job=job,
        cron_schedule="0 3 * * *",
        default_status=DefaultScheduleStatus.RUNNING,
    )
    return propensity_model, job, schedule
