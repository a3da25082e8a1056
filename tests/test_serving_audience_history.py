"""The serving copy keeps a deleted customer's audience history, publication after publication.

audience_changes keeps every entry and exit, of deleted customers too, and the audience
publisher sends it to Kafka from the serving copy, in sequence. A publication that found a
deleted customer only deleted their rows from every table of the slot: a customer who had
exited an audience before being deleted lost their entry and exit from the copy (the publisher
then skipped them, and stopped at the next change). Every copy must hold the marts' history.

Customers 1, 2 and 3 bought in store 200 days ago (lapsed_instore_buyers: all three enter);
2 buys again (exits); 1 is updated; 2 is deleted; 1 is updated again. The copy is published
after each round, alternating slots as the pipeline does.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from customer360.config import Settings
from customer360.pipeline.microbatch import MicroBatch
from customer360.serving.publish import publish_serving_copy
from tests.dbt_fixtures.raw_builder import RawLanding

TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def days_ago(n: float) -> dt.datetime:
    return TODAY - dt.timedelta(days=n)


def history(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple]:
    return con.execute(
        f"select sequence, audience, customer_id, change from {relation} order by sequence"
    ).fetchall()


@pytest.fixture(scope="module")
def published_rounds(tmp_path_factory) -> list[tuple[str, list[tuple], list[tuple]]]:
    """Per round: its name, the marts' history and the serving copy's."""
    tmp: Path = tmp_path_factory.mktemp("audience-history")
    settings = Settings(warehouse=tmp / "warehouse.duckdb", home=tmp)
    raw = RawLanding([settings.warehouse])
    rounds = []
    with MicroBatch(settings, data_tests_every_s=None) as batch:

        def publish(name: str) -> None:
            raw.land()
            built = batch.build_models(batch.sources_to_build(), data_tests=False)
            assert built is None or built.success, built.failures
            publish_serving_copy(batch.con, settings)
            with duckdb.connect(str(settings.serving_path), read_only=True) as served:
                rounds.append(
                    (
                        name,
                        history(batch.con, "marts.audience_changes"),
                        history(served, "audience_changes"),
                    )
                )

        raw.now = days_ago(0.5)
        for customer in (1, 2, 3):
            raw.user("snapshot", customer, customer)
            raw.order("Instore", "insert", 10 + customer, customer, days_ago(200),
                      [("Scarf", "Accessories", 20, 1)])  # fmt: skip
        publish("1, 2 and 3 enter")
        raw.now = days_ago(0.4)
        raw.order("Instore", "insert", 22, 2, days_ago(0.45), [("Hat", "Accessories", 20, 1)])
        publish("2 exits")
        raw.now = days_ago(0.35)
        raw.user("update", 1, 1, first_name="A")
        publish("1 updated")
        raw.now = days_ago(0.3)
        raw.user("delete", 2, 2)
        publish("2 deleted")
        raw.now = days_ago(0.25)
        raw.user("update", 1, 1, first_name="B")
        publish("1 updated again")
    return rounds


def test_the_rounds_record_every_entry_and_the_exit(published_rounds) -> None:
    name, marts, _ = published_rounds[-1]
    changes = [(customer, change) for _, audience, customer, change in marts
               if audience == "lapsed_instore_buyers"]  # fmt: skip
    assert sorted(changes) == [(1, "entered"), (2, "entered"), (2, "exited"), (3, "entered")]


def test_every_copy_holds_the_marts_history(published_rounds) -> None:
    for name, marts, served in published_rounds:
        assert served == marts, f"after '{name}'"
