"""Purchase propensity: training, the dbt scoring model, incremental builds, the API.

No services: raw landings go through the real dbt project into DuckDB warehouses.

- A generated history (customers with a steady personal rate of orders and visits, as the
  generator makes them) trains a model through the Dagster asset itself: its metadata holds the
  validation AUC, the Brier score and a reliability table by decile; every customer is scored
  by the new model, and the API serves the score with its reasons.
- Hand-checked customers: the dbt model's score equals scikit-learn's `predict_proba` for the
  same coefficients, means and scales (features worked out by hand below).

Incremental scores equal a full refresh round after round, with models arriving between builds:
the scripted rounds of tests/test_dbt_incremental.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import json
import math
import random
from pathlib import Path

import duckdb
import numpy as np
import pytest
from dagster import AssetKey, materialize
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from customer360.config import Settings
from customer360.pipeline.microbatch import close_warm_microbatches
from customer360.propensity.features import FEATURES, Facts, facts_at, feature_row
from customer360.propensity.model import probability
from customer360.serving.server import BackgroundServer
from dagster_project.build import build_definitions
from dagster_project.propensity import PROPENSITY_JOB, PROPENSITY_KEY, propensity_model
from dagster_project.resources import pipeline_resource
from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.propensity_model import (
    HAND_INTERCEPT,
    HAND_MODEL,
    REFERENCE,
    hand_trained_model,
    store_model,
)
from tests.dbt_fixtures.raw_builder import RawLanding, utc

NOW = utc("2026-05-01T12:00:00")
DAY = dt.timedelta(days=1)


def moments(rng: random.Random, mean: float, first: dt.datetime) -> list[dt.datetime]:
    """A Poisson number (of mean `mean`) of times between `first` and NOW, sorted."""
    count = np.random.default_rng(rng.randrange(2**32)).poisson(mean)
    return sorted(first + rng.random() * (NOW - first) for _ in range(count))


def generated_history(raw: RawLanding, customers: int, days: int, seed: int) -> None:
    """Customers with a personal activity level (lognormal): orders (either channel) and
    website visits at a steady rate over `days` days up to NOW, emails with opens."""
    rng = random.Random(seed)
    start = NOW - days * DAY
    order_number = 100_000
    for customer in range(1, customers + 1):
        created = start - rng.randint(0, 400) * DAY if rng.random() < 0.6 else None
        if created is None:  # signed up during the window
            created = start + rng.random() ** 0.7 * (days - 2) * DAY
        raw.user("snapshot", customer, customer, created_at=created)
        activity = min(20.0, rng.lognormvariate(-0.5, 1.0))
        first = max(created, start)
        years = (NOW - first) / DAY / 365
        for moment in moments(rng, activity * 6.0 * years, first):
            order_number += 1
            channel = rng.choice(["Online", "Instore"])
            items = [("Red Shirt", "Tops", rng.choice([19.99, 49.99, 80]), rng.randint(1, 2))]
            raw.order(channel, "snapshot", order_number, customer, moment, items)
        for n, moment in enumerate(moments(rng, activity * 20.0 * years, first)):
            raw.weblog(f"w{customer}-{n}", customer, moment)
        opens = rng.random()
        for n, moment in enumerate(moments(rng, activity * 10.0 * years, first)):
            opened = rng.random() < opens
            raw.email(
                f"e{customer}-{n}",
                customer,
                moment,
                opened=opened,
                updated_at=moment + dt.timedelta(hours=2) if opened else moment,
            )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A generated history of 600 customers over 150 days, built by dbt, and the propensity
    asset materialized on it (as the nightly job does)."""
    home = tmp_path_factory.mktemp("propensity")
    settings = Settings(warehouse=home / "warehouse.duckdb", home=home / "home")
    raw = RawLanding([settings.warehouse])
    generated_history(raw, customers=600, days=150, seed=5)
    raw.land()
    run_dbt(settings.warehouse, "run", work_dir=home / "dbt")
    result = materialize([propensity_model], resources={"pipeline": pipeline_resource(settings)})
    close_warm_microbatches()  # the warehouse is free for the tests' own connections
    yield settings, result


def test_training_reports_validation_auc_and_calibration_and_rescores_everyone(trained):
    settings, result = trained
    assert result.success
    (materialization,) = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == PROPENSITY_KEY
    ]
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    # A steady personal rate makes the history predictive: far better than chance.
    assert 0.6 < metadata["validation_auc"] <= 1.0
    assert 0.0 < metadata["validation_brier"] < 0.25
    assert 0.0 <= metadata["calibration_error"] < 0.15
    deciles = [line for line in metadata["reliability by decile"].splitlines()[2:]]
    assert len(deciles) == 10
    assert sum(int(line.split("|")[2]) for line in deciles) == metadata["validation_examples"]
    for feature in FEATURES:
        assert f"| {feature} |" in metadata["coefficients"]
    # Validated on a later period than it was fit on: the cutoffs are 30 days apart.
    train_cutoff = dt.datetime.fromisoformat(metadata["train_cutoff"])
    validation_cutoff = dt.datetime.fromisoformat(metadata["validation_cutoff"])
    assert validation_cutoff - train_cutoff == 30 * DAY
    assert dt.datetime.fromisoformat(metadata["reference_at"]) - validation_cutoff == 30 * DAY
    assert metadata["train_examples"] > 300 and metadata["validation_examples"] > 300

    with duckdb.connect(str(settings.warehouse)) as con:
        customers = con.execute("select count(*) from marts.customer_360").fetchone()[0]
        scored = con.execute(
            "select count(*), count(distinct model_version), min(model_version),"
            " min(propensity_score), max(propensity_score) from marts.customer_propensity"
        ).fetchone()
        stored = con.execute(
            "select model_version, validation_auc from ml.propensity_models"
        ).fetchall()
    assert scored[:3] == (customers, 1, metadata["model_version"])
    assert 0 < scored[3] < scored[4] < 1
    assert stored == [(metadata["model_version"], pytest.approx(metadata["validation_auc"]))]


def test_the_profile_api_shows_the_score_and_its_reasons(trained):
    settings, _ = trained
    with duckdb.connect(str(settings.warehouse)) as con:
        customer, score, version, reasons = con.execute(
            "select customer_id, propensity_score, model_version,"
            " [r for r in [reason_1, reason_2, reason_3] if r is not null]"
            " from marts.customer_propensity where reason_2 is not null"
            " order by propensity_score desc limit 1"
        ).fetchone()
    with BackgroundServer(settings, port=0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", f"/api/customers/{customer}")
        response = connection.getresponse()
        profile = json.loads(response.read())
    assert response.status == 200
    propensity = profile["propensity"]
    assert propensity["score"] == pytest.approx(score)
    assert propensity["model_version"] == version
    assert propensity["reasons"] == reasons and len(reasons) >= 2
    assert all(isinstance(reason, str) and reason for reason in reasons)


def hand_checked_warehouse(path: Path) -> None:
    """Four customers, every fact as of REFERENCE (2026-05-31 00:00) worked out by hand:

    customer 1: created 2026-01-01 (150 days); one order 2026-05-21 (10 days ago) of 100.00;
        last visit 2026-05-30 (1 day); an email opened 2026-05-25 (6 days).
    customer 2: created 2026-05-01 (30 days); nothing else (recencies 365, 0 orders, 0 spent).
    customer 3: created 2025-06-05 (360 days); three orders, the last 2026-03-02 (90 days ago),
        of 100.00 each (300.00); last visit 2026-05-01 (30 days); no email opened.
    customer 4 (identity stitching): created 2026-03-02 (90 days); one order, a guest till sale
        2026-05-26 (5 days ago) of 80.00 matched by email; on a browser, an anonymous event
        2026-05-12, a login 2026-05-20, an anonymous event 2026-05-28: last visit 3 days ago
        (stitched, after the login); no email opened. As of 2026-05-15 (GUEST_CUTOFF) it has no
        order yet (the guest sale is its label) and no visit: its browser's only event then was
        stitched to it by the later login, which training must not know of.
    """
    raw = RawLanding([path])
    raw.user("snapshot", 1, 1, created_at=utc("2026-01-01T00:00:00"))
    raw.user("snapshot", 2, 2, created_at=utc("2026-05-01T00:00:00"))
    raw.user("snapshot", 3, 3, created_at=utc("2025-06-05T00:00:00"))
    item = [("Black Coat", "Outerwear", 100, 1)]
    raw.order("Online", "snapshot", 11, 1, utc("2026-05-21T00:00:00"), item)
    raw.order("Instore", "snapshot", 31, 3, utc("2026-01-01T00:00:00"), item)
    raw.order("Online", "snapshot", 32, 3, utc("2026-02-01T00:00:00"), item)
    raw.order("Instore", "snapshot", 33, 3, utc("2026-03-02T00:00:00"), item)
    raw.user("snapshot", 4, 4, created_at=utc("2026-03-02T00:00:00"), email="dee@example.com")
    guest_item = [("Red Shirt", "Tops", 40, 2)]
    raw.order(
        "Instore", "snapshot", 41, None, utc("2026-05-26T00:00:00"), guest_item, " Dee@Example.com"
    )
    raw.weblog("a4-1", None, utc("2026-05-12T00:00:00"), anonymous_id="browser-4")
    login = "login_success.html"
    raw.weblog("l4", 4, utc("2026-05-20T00:00:00"), page=login, anonymous_id="browser-4")
    raw.weblog("a4-2", None, utc("2026-05-28T00:00:00"), anonymous_id="browser-4")
    raw.weblog("w1", 1, utc("2026-05-30T00:00:00"))
    raw.weblog("w3", 3, utc("2026-05-01T00:00:00"))
    raw.email("e1", 1, utc("2026-05-25T00:00:00"))
    raw.email(
        "e1", 1, utc("2026-05-25T00:00:00"), opened=True, updated_at=utc("2026-05-25T00:00:00")
    )
    raw.email("e3", 3, utc("2026-05-10T00:00:00"))
    raw.land()


# The facts of hand_checked_warehouse's docstring: the features follow from them.
HAND_FACTS = {
    1: Facts(1, 10.0, 1, 100.0, 150.0, 1.0, 6.0),
    2: Facts(2, None, 0, 0.0, 30.0, None, None),
    3: Facts(3, 90.0, 3, 300.0, 360.0, 30.0, None),
    4: Facts(4, 5.0, 1, 80.0, 90.0, 3.0, None),
}
HAND_FEATURES = {
    1: [10.0, math.log(2), math.log(101), math.log(151), 1.0, 6.0],
    2: [365.0, 0.0, 0.0, math.log(31), 365.0, 365.0],
    3: [90.0, math.log(4), math.log(301), math.log(361), 30.0, 365.0],
    4: [5.0, math.log(2), math.log(81), math.log(91), 3.0, 365.0],
}
# Customer 4 as of GUEST_CUTOFF (tenure 74 days), and its guest sale 11 days later as the label.
GUEST_CUTOFF = dt.datetime(2026, 5, 15)
CUSTOMER_4_AT_GUEST_CUTOFF = Facts(4, None, 0, 0.0, 74.0, None, None, ordered_next=True)


def test_dbt_score_equals_sklearn_predict_proba_on_hand_checked_customers(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    hand_checked_warehouse(warehouse)
    run_dbt(warehouse, "run", work_dir=tmp_path / "dbt")  # creates the empty model table
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("select count(*) from marts.customer_propensity").fetchone() == (0,)
        # The training query's facts as of the reference time are the hand-worked ones.
        assert {f.customer_id: f for f in facts_at(con, REFERENCE)} == {
            n: dataclasses.replace(facts, ordered_next=False) for n, facts in HAND_FACTS.items()
        }
        facts_before = {f.customer_id: f for f in facts_at(con, GUEST_CUTOFF)}
        assert facts_before[4] == CUSTOMER_4_AT_GUEST_CUTOFF
    store_model(warehouse, "20260531T000000")
    run_dbt(warehouse, "run", "--select", "customer_propensity", work_dir=tmp_path / "dbt")

    scaler = StandardScaler()
    scaler.mean_ = np.array([HAND_MODEL[f][0] for f in FEATURES])
    scaler.scale_ = np.array([HAND_MODEL[f][1] for f in FEATURES])
    scaler.var_ = scaler.scale_**2
    scaler.n_features_in_ = len(FEATURES)
    classifier = LogisticRegression()
    classifier.coef_ = np.array([[HAND_MODEL[f][2] for f in FEATURES]])
    classifier.intercept_ = np.array([HAND_INTERCEPT])
    classifier.classes_ = np.array([False, True])
    with duckdb.connect(str(warehouse)) as con:
        rows = con.execute(
            f"select customer_id, propensity_score, {', '.join(FEATURES)},"
            " reason_1, reason_2, reason_3, model_version, scored_as_of"
            " from marts.customer_propensity order by customer_id"
        ).fetchall()
    assert [row[0] for row in rows] == [1, 2, 3, 4]
    for customer, score, *values in rows:
        features, reasons, version, as_of = values[:6], values[6:9], values[9], values[10]
        assert features == pytest.approx(HAND_FEATURES[customer], abs=1e-12), customer
        assert feature_row(HAND_FACTS[customer]) == pytest.approx(HAND_FEATURES[customer])
        expected = classifier.predict_proba(scaler.transform([HAND_FEATURES[customer]]))[0, 1]
        assert score == pytest.approx(expected, rel=1e-12), customer
        assert (version, as_of) == ("20260531T000000", REFERENCE)
        reasons_by_hand = {
            # Contributions (coefficient x standardized value), positive ones largest first:
            # 1: order recency -0.9*(10-120)/100 = 0.99, visit -0.6*(1-150)/120 = 0.745,
            #    orders 0.8*(0.693-0.7)/0.6 < 0, spend 0.3*(4.615-2.5)/2 = 0.317
            1: ["last order 10 days ago", "visited the website 1 day ago", "spent 100.00 in total"],
            # 2: only tenure -0.2*(3.434-5) = 0.313 and events it never had (not reasons)
            2: ["customer for 30 days", None, None],
            # 3: orders 0.8*(1.386-0.7)/0.6 = 0.915, visit -0.6*(30-150)/120 = 0.6,
            #    spend 0.3*(5.707-2.5)/2 = 0.481, order recency 0.27
            3: ["3 orders", "visited the website 30 days ago", "spent 300.00 in total"],
            # 4: order recency -0.9*(5-120)/100 = 1.035, visit -0.6*(3-150)/120 = 0.735,
            #    spend 0.3*(4.394-2.5)/2 = 0.284, tenure -0.2*(4.511-5) = 0.098, orders < 0
            4: ["last order 5 days ago", "visited the website 3 days ago", "spent 80.00 in total"],
        }
        assert reasons == reasons_by_hand[customer], customer


def test_too_little_history_skips_the_training_without_failing_the_run(tmp_path):
    """20 days of orders cannot give a training period and a later one to validate on: the
    nightly run succeeds (a young warehouse is not a fault to page anyone about every night),
    the asset is not materialized, no model is stored, and an observation says why."""
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", home=tmp_path / "home")
    raw = RawLanding([settings.warehouse])
    generated_history(raw, customers=40, days=20, seed=7)
    raw.land()
    run_dbt(settings.warehouse, "run", work_dir=tmp_path / "dbt")
    try:
        result = materialize(
            [propensity_model], resources={"pipeline": pipeline_resource(settings)}
        )
    finally:
        close_warm_microbatches()
    assert result.success
    assert result.get_asset_materialization_events() == []
    (observation,) = result.get_asset_observation_events()
    skipped = observation.asset_observation_data.asset_observation.metadata["skipped"]
    assert skipped.value.startswith("no model trained: "), skipped
    with duckdb.connect(str(settings.warehouse)) as con:
        assert con.execute("select count(*) from ml.propensity_coefficients").fetchone() == (0,)


def test_the_asset_graph_has_the_model_its_job_and_schedule(tmp_path):
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", home=tmp_path / "home")
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    assert PROPENSITY_KEY in graph.get_all_asset_keys()
    # dbt's ml source is the asset: staging -> the model -> its staging view -> the scores.
    view = AssetKey(["staging", "stg_propensity_coefficients"])
    assert graph.get(view).parent_keys == {PROPENSITY_KEY}
    assert view in graph.get(AssetKey(["marts", "customer_propensity"])).parent_keys
    training_inputs = graph.get(PROPENSITY_KEY).parent_keys
    assert AssetKey(["staging", "stg_online_orders"]) in training_inputs
    # identity stitching: guest sales matched by email, anonymous visits stitched by a login
    assert AssetKey(["intermediate", "int_guest_order_owners"]) in training_inputs
    assert AssetKey(["intermediate", "int_customer_order_items"]) in training_inputs
    assert AssetKey(["intermediate", "int_anonymous_event_owners"]) in training_inputs
    job = defs.resolve_job_def(PROPENSITY_JOB)
    assert job.tags.get("c360/writer") == "warehouse"
    schedule = defs.resolve_schedule_def("propensity_training_schedule")
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.default_status.value == "RUNNING"


def test_probability_is_the_dbt_formula():
    """`probability` (used by the report) is the logistic of the standardized sum."""
    model = hand_trained_model("v")
    logit = HAND_INTERCEPT + sum(
        c * (v - m) / s for (m, s, c), v in zip(HAND_MODEL.values(), HAND_FEATURES[1], strict=True)
    )
    assert probability(model, HAND_FEATURES[1]) == pytest.approx(1 / (1 + math.exp(-logit)))
