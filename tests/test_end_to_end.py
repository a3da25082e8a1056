"""Generator -> extractors -> dbt, on the real services: the marts agree with the sources."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import duckdb

from customer360.generator.history import seed
from extractors import SOURCES, Extractor
from tests.dbt_fixtures.dbt_invoke import MARTS, run_dbt
from tests.extractor_helpers import drain, mongo_db


def purchase_stats_from_mongo(settings) -> dict[tuple[int, str], tuple[int, int, float]]:
    """(customer, channel) -> (orders, line items, amount), straight from the source documents."""
    db = mongo_db(settings)
    customers = {u["id"] for u in db.users.find({}, {"id": 1})}
    stats = defaultdict(lambda: [0, 0, 0.0])
    for collection, channel in (("online_orders", "Online"), ("instore_orders", "Instore")):
        for order in db[collection].find():
            if order["user_id"] not in customers:
                continue
            entry = stats[(order["user_id"], channel)]
            entry[0] += 1
            entry[1] += len(order["items"])
            entry[2] += sum(i["price"] * i["quantity"] for i in order["items"])
    return {k: (v[0], v[1], round(v[2], 2)) for k, v in stats.items()}


def test_generated_data_lands_and_builds_into_marts_that_match_the_sources(
    isolated_settings, tmp_path
):
    settings = isolated_settings
    # Every order with its user_id (--no-identity): the purchase stats below read them straight
    # from Mongo; identity stitching's history has tests of its own (test_identity_pipeline).
    seed(settings, customers=150, days=60, seed=7, now=datetime(2026, 11, 1, 12, tzinfo=UTC),
         identity=False)  # fmt: skip
    with Extractor(settings) as extractor:
        drain(extractor, SOURCES)
    run_dbt(settings.warehouse, "build", work_dir=tmp_path)

    db = mongo_db(settings)
    # dbt-duckdb keeps its (read-write) connection in this process; read through the same kind.
    with duckdb.connect(str(settings.warehouse)) as con:
        for mart in MARTS:
            assert con.execute(f"select count(*) from marts.{mart}").fetchall()[0][0] > 0, mart
        assert con.execute("select count(*) from marts.customer_360").fetchall()[0][0] == (
            db.users.count_documents({})
        )
        rows = con.execute(
            "select customer_id, channel, number_of_orders, number_of_items_purchased,"
            " round(amount_spent, 2) from marts.customer_purchase_stats"
            " where number_of_orders > 0"
        ).fetchall()
    landed = {(c, ch): (n, items, float(amount)) for c, ch, n, items, amount in rows}
    assert landed == purchase_stats_from_mongo(settings)
