"""The marts equal the chaos soak's independent oracle on random sources built to hit the rules'
corners, batch after batch, through the micro-batch's own build step; a full build equals them.

The hand-checked fixtures (test_dbt_hand_checked.py, test_dbt_identity_hand_checked.py) pin each
rule on a case worked out by hand; the chaos soak checks the generator's realistic data. Here a
seeded generator draws small worlds where the corners are common rather than rare: a few
customers sharing a few devices and addresses; event times drawn from a handful of instants, so
logins and events tie, and late events and late logins arrive in later batches; addresses typed
with other case and spaces, moved from customer to customer, and shared by two; guest sales
matched, corrected, given a user_id and deleted; customers deleted and back in a new document;
orders and events of customers who do not exist (yet); consent granted and withdrawn, and
statuses that mean neither; unsubscribes; online orders cancelled, returned (in any case, with
whitespace around) and changing status, so traits count sales only.

Each batch lands in `raw` (RawLanding writes rows as the extractors would) and is built by
`MicroBatch.build_models`, as the stream builds it: by dbt until two builds agree, then replayed
on two connections. After each, every mart the oracle knows (customer_details, customer_360 but
as_of, purchase stats, popular items, activity, recent errors, traits, consent, identities,
audiences) must equal what
the oracle (customer360/chaos/oracle.py: the rules in plain Python, reading nothing dbt built)
computes from what Kafka and MongoDB would hold, read back from the landing: every Kafka record,
each document's latest change, and the users' changes the identity rules need. So must the
serving copy, published after each batch as the stream publishes it (in full the first time,
then in proportion to change: deleted customers and moved orders included).
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import duckdb
import pytest
from bson.json_util import loads

from customer360.chaos.identity_oracle import read_user_changes
from customer360.chaos.oracle import (
    LOGIN_PAGE,
    KafkaMessage,
    SourceData,
    expected_marts,
    marts_rows,
)
from customer360.chaos.verify import compare_marts
from customer360.config import Settings
from customer360.pipeline.microbatch import LEARNING_BUILDS, MicroBatch
from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import KAFKA_TABLES, MONGO_TABLES, RawLanding, utc
from tests.test_dbt_incremental import assert_same_relations

SEEDS = (11, 22, 33)
# dbt builds the first three (a first build, then two that agree), the micro-batch replays the
# others on two connections.
BATCHES = 6
DAY = utc("2026-06-01T08:00:00")
# Few instants, so that events, logins and orders often fall on the same one.
INSTANTS = [DAY + dt.timedelta(minutes=15 * i) for i in range(12)]
ADDRESSES = ("ann@example.com", "ben@example.com", "cat@example.com", "shared@example.com")
DEVICES = ("dev-1", "dev-2", "dev-3")
# The login page without both ids (anonymous, or logged in without a cookie) is no login.
PAGES = ("home.html", "cart.html", "pay.html", LOGIN_PAGE)
ITEMS = (("Scarf", "Accessories", 20), ("Hat", "Accessories", 10), ("Coat", "Outerwear", 90))


def variant(rng: random.Random, address: str) -> str:
    """The same address as a person might type it: other case, whitespace around."""
    typed = rng.choice([address, address.upper(), address.title(), address.capitalize()])
    return rng.choice(["", " ", "  ", "\t"]) + typed + rng.choice(["", " ", "\n"])


class RandomWorld:
    """Random changes of the five sources, landed batch by batch through `raw`."""

    def __init__(self, seed: int, raw: RawLanding):
        self.rng = random.Random(seed)
        self.raw = raw
        self.customers: dict[int, int] = {}  # customer id -> its users document's number
        self.deleted: set[int] = set()
        self.guest_sales: dict[int, str | None] = {}  # order number -> address (None: by id)
        # number -> (customer_id, date, items), to change its status later
        self.online_orders: dict[int, tuple] = {}
        self.next_customer = 1
        self.next_number = 1_000
        self.next_event = 1

    def number(self) -> int:
        self.next_number += 1
        return self.next_number

    def event_id(self, prefix: str) -> str:
        """A new event id, sometimes with whitespace around (trimmed, it is the same id)."""
        self.next_event += 1
        return (
            self.rng.choice(["", "", "", " \t"])
            + f"{prefix}{self.next_event}"
            + (self.rng.choice(["", "", "\n"]))
        )

    def when(self) -> dt.datetime:
        return self.rng.choice(INSTANTS)

    # -- MongoDB ---------------------------------------------------------------------------
    def user(self, operation: str, customer_id: int) -> None:
        rng = self.rng
        fields: dict = {"email": variant(rng, rng.choice(ADDRESSES))}
        if rng.random() < 0.4:
            status = rng.choice(["granted", "withdrawn", "Granted ", "\twithdrawn\r\n", "maybe"])
            stated = {"status": status}
            if rng.random() < 0.7:  # else stated without a time: since the change that set it
                stated["at"] = self.when()
            fields["consent"] = {"email": stated}
        number = self.customers.setdefault(customer_id, self.number())
        self.raw.user(operation, number, customer_id, **fields)

    def users(self, first: bool) -> None:
        rng = self.rng
        if first:
            for _ in range(4):
                self.user("snapshot", self.next_customer)
                self.next_customer += 1
            return
        for _ in range(rng.randint(1, 3)):
            customer_id = rng.choice(sorted(self.customers))
            self.raw.tick(60)  # a change later than the one before: an address moves
            self.user("update", customer_id)
        if rng.random() < 0.5:
            self.user("insert", self.next_customer)
            self.next_customer += 1
        if rng.random() < 0.2 and len(self.customers) > 2:
            customer_id = rng.choice(sorted(self.customers))
            self.raw.user("delete", self.customers.pop(customer_id), customer_id)
            self.deleted.add(customer_id)
        elif self.deleted and rng.random() < 0.3:  # back, in a new document
            customer_id = self.deleted.pop()
            self.user("insert", customer_id)

    def items(self) -> list[tuple[str, str, int, int]]:
        chosen = self.rng.sample(ITEMS, self.rng.randint(1, 2))
        return [(name, category, price, self.rng.randint(1, 3)) for name, category, price in chosen]

    def instore_orders(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(1, 4)):
            number = self.number()
            if rng.random() < 0.75:
                address = rng.choice([*ADDRESSES, "nobody@example.com"])
                self.guest_sales[number] = address
                self.raw.order(
                    "Instore", "insert", number, None, self.when(), self.items(),
                    customer_email=variant(rng, address),
                )  # fmt: skip
            else:
                self.guest_sales[number] = None
                customer_id = rng.randint(1, self.next_customer)
                self.raw.order("Instore", "insert", number, customer_id, self.when(), self.items())
        for number in rng.sample(sorted(self.guest_sales), min(2, len(self.guest_sales))):
            roll = rng.random()
            if roll < 0.4:  # the address corrected
                address = rng.choice(ADDRESSES)
                self.guest_sales[number] = address
                self.raw.order(
                    "Instore", "update", number, None, self.when(), self.items(),
                    customer_email=variant(rng, address),
                )  # fmt: skip
            elif roll < 0.6:  # a user_id replaces the address
                self.guest_sales[number] = None
                customer_id = rng.randint(1, self.next_customer)
                self.raw.order("Instore", "update", number, customer_id, self.when(), self.items())
            elif roll < 0.75:
                del self.guest_sales[number]
                self.raw.order("Instore", "delete", number)

    def online(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(1, 2)):
            number = self.number()
            order = (rng.randint(1, self.next_customer), self.when(), self.items())
            self.online_orders[number] = order
            self.raw.order("Online", "insert", number, *order, status=self.status())
        if self.online_orders and rng.random() < 0.4:
            # a status changes (delivered, then returned: no longer a sale, or back)
            number = rng.choice(sorted(self.online_orders))
            order = self.online_orders[number]
            self.raw.order("Online", "update", number, *order, status=self.status())
        if self.online_orders and rng.random() < 0.3:
            number = rng.choice(sorted(self.online_orders))
            del self.online_orders[number]
            self.raw.order("Online", "delete", number)

    def status(self) -> str | None:
        """An online order's status: mostly a sale; cancelled or returned in any case and
        with whitespace around (not sales); a status the list does not name; none."""
        return self.rng.choice(
            ["delivered", "delivered", "shipped", " Returned\t", "CANCELLED", "canceled",
             "refunded", "partially_returned", None]
        )  # fmt: skip

    # -- Kafka -----------------------------------------------------------------------------
    def weblogs(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(4, 10)):
            device = rng.choice(DEVICES) + rng.choice(["", "", "", " ", "\r\n"])
            roll = rng.random()
            # the same message with whitespace around is the same error
            error = rng.choice([None, None, "Timeout", "Payment failed", "Timeout\n", "\t"])
            page = rng.choice(PAGES)
            if roll < 0.3:  # a login on the device
                customer_id = rng.randint(1, self.next_customer)
                self.raw.weblog(
                    self.event_id("l"), customer_id, self.when(), page=LOGIN_PAGE,
                    anonymous_id=device,
                )  # fmt: skip
            elif roll < 0.8:  # anonymous
                self.raw.weblog(
                    self.event_id("a"), None, self.when(), page=page, error_message=error,
                    anonymous_id=device, partition=rng.randint(0, 2),
                )  # fmt: skip
            else:  # logged in, no cookie
                customer_id = rng.randint(1, self.next_customer)
                self.raw.weblog(
                    self.event_id("w"), customer_id, self.when(), page=page, error_message=error,
                    partition=rng.randint(0, 2),
                )  # fmt: skip

    def emails(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(1, 3)):
            customer_id = rng.randint(1, self.next_customer)
            sent = self.when()
            self.raw.email(
                self.event_id("m"), customer_id, sent, opened=rng.random() < 0.5,
                clicked=rng.random() < 0.3, updated_at=sent + dt.timedelta(minutes=5),
                recipient_email=variant(rng, rng.choice(ADDRESSES)),
                unsubscribed=rng.choice([None, None, True, False]),
            )  # fmt: skip

    def batch(self, first: bool) -> None:
        self.raw.tick(3600)
        self.users(first)
        self.instore_orders()
        self.online()
        self.weblogs()
        self.emails()
        self.raw.land()


def sources_from_raw(con: duckdb.DuckDBPyConnection) -> SourceData:
    """What Kafka and MongoDB hold, given that `raw` landed all of it: every Kafka record, and
    each document's latest change (none after a delete)."""
    messages = {
        table: [
            KafkaMessage(topic, partition, offset, key and key.encode(), value.encode())
            for topic, partition, offset, key, value in con.execute(
                f'select topic, "partition", "offset", "key", "value" from raw.{table}'
                ' order by "partition", "offset"'
            ).fetchall()
        ]
        for table in KAFKA_TABLES
    }
    documents = {
        table: [
            loads(document)
            for (document,) in con.execute(
                f"select document from raw.{table}"
                " qualify row_number() over (partition by document_key"
                " order by cluster_time desc, batch_id desc) = 1"
            ).fetchall()
            if document is not None
        ]
        for table in MONGO_TABLES
    }
    return SourceData(messages=messages, documents=documents, user_changes=read_user_changes(con))


def differences(
    con: duckdb.DuckDBPyConnection, label: str, serving: Path | None = None
) -> list[str]:
    """What the marts on `con` (and the serving copy at `serving`) disagree with the oracle on."""
    expected = expected_marts(sources_from_raw(con))
    found = compare_marts(expected, marts_rows(con), label)
    if serving is not None:
        with duckdb.connect(str(serving), read_only=True) as copy:
            found.merge(compare_marts(expected, marts_rows(copy, schema=""), f"{label}, serving"))
    return found.examples


@pytest.mark.parametrize("seed", SEEDS)
def test_random_worlds_equal_the_oracle_batch_after_batch(seed: int, tmp_path: Path) -> None:
    warehouse, refreshed = tmp_path / "warehouse.duckdb", tmp_path / "full.duckdb"
    raw = RawLanding([warehouse, refreshed])
    raw.now = DAY
    world = RandomWorld(seed, raw)
    settings = Settings(warehouse=warehouse, serving_db=tmp_path / "serving" / "serving.duckdb")
    replayed, modes = [], []
    with MicroBatch(settings.with_overrides(home=tmp_path), data_tests_every_s=None) as batch:
        for number in range(BATCHES):
            world.batch(first=number == 0)
            built = batch.build_models(batch.sources_to_build(), data_tests=False)
            assert built.success, built.failures
            replayed.append(built.replayed)
            published = batch.publish()
            assert published is not None and published.published
            modes.append(published.mode)
            with batch.con.cursor() as con:
                label = f"seed {seed}, batch {number + 1}"
                assert differences(con, label, settings.serving_path) == []
    # dbt built the first batches, until two of its builds agreed; the micro-batch replayed the
    # rest.
    assert replayed[:LEARNING_BUILDS] == [False] * LEARNING_BUILDS and replayed[-1], replayed
    # The serving copy was copied in full once, then brought up to date in proportion to change.
    assert modes[0] == "full" and "incremental" in modes[1:], modes

    run_dbt(refreshed, "run", work_dir=tmp_path)
    assert_same_relations(warehouse, refreshed)
