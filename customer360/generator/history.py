"""`seed`: writes a consistent history of customers and their activity into Mongo and Kafka.

The content depends only on (`seed`, `now`, `days`, `customers`, first customer id): the same
arguments give the same documents, ids and records.

Records are written customer by customer (each customer's in time order), so a topic is not in
chronological order across customers; Kafka record timestamps are the time of the seed (the
event time is the record's `date`), so topic retention never drops the history.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pymongo
from pymongo import MongoClient

from customer360.addresses import redact_uri
from customer360.config import Settings
from customer360.generator import catalog, records
from customer360.generator.outputs import KafkaOutput, MongoBulkWriter, to_json
from customer360.generator.records import CampaignSend, Weighted
from customer360.kafka_topics import ensure_topics

DAY_MS = 86_400_000
# Online shopping peaks at lunch and in the evening (UTC hours).
ONLINE_HOUR_WEIGHTS = (
    1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 4, 4.5,
    6, 6, 4.5, 4, 4, 4.5, 5.5, 7, 8, 7.5, 5, 2.5,
)  # fmt: skip
ONLINE_HOUR_PICKER = Weighted(list(enumerate(ONLINE_HOUR_WEIGHTS)))
STORE_HOUR_WEIGHTS = (2, 4, 6, 8, 8, 7, 7, 8, 9, 7, 3)  # shops open 9-20
STORE_HOUR_PICKER = Weighted(list(zip(range(9, 20), STORE_HOUR_WEIGHTS, strict=True)))
# Share of customers who already existed when the history window starts.
EXISTING_CUSTOMER_SHARE = 0.55
# Share of customers subscribed to marketing emails.
SUBSCRIBED_SHARE = 0.75
# Days between two campaign mailings, on average.
DAYS_BETWEEN_SENDS = 5.0
# Share of emails with follow-ups whose records are produced before the original send record.
OUT_OF_ORDER_EMAIL_SHARE = 0.02


class SeedRefused(RuntimeError):
    """The database already holds customers and `append` was not asked for."""


@dataclass(frozen=True)
class SeedSummary:
    customers: int
    first_customer_id: int
    last_customer_id: int
    online_orders: int
    instore_orders: int
    weblogs: int
    email_records: int
    emails: int
    now: datetime
    days: int
    seconds: float

    @property
    def records(self) -> int:
        return (
            self.customers
            + self.online_orders
            + self.instore_orders
            + self.weblogs
            + self.email_records
        )

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        return (
            f"seeded {self.customers} customers (ids {self.first_customer_id}.."
            f"{self.last_customer_id}), {self.online_orders} online orders, "
            f"{self.instore_orders} in-store orders, {self.weblogs} weblogs, "
            f"{self.emails} emails ({self.email_records} email records) over {self.days} days "
            f"up to {self.now.isoformat()} in {self.seconds:.1f} s "
            f"({self.records / max(self.seconds, 1e-9):,.0f} records/s)"
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        data["now"] = self.now.isoformat()
        data["records"] = self.records
        return data


def default_now() -> datetime:
    """The current UTC time truncated to the minute (the reference "now" of a seed)."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def create_indexes(db) -> None:
    db["users"].create_index([("id", pymongo.ASCENDING)], unique=True, name="id_unique")
    for collection in ("online_orders", "instore_orders"):
        db[collection].create_index([("user_id", pymongo.ASCENDING)], name="user_id")


def plan_campaign_sends(
    rng: random.Random, start_ms: int, end_ms: int
) -> list[tuple[int, CampaignSend]]:
    """The mailings of the window, every few days, at 8-11 or 17-19 UTC."""
    sends = []
    day_ms = start_ms - start_ms % DAY_MS
    while True:
        day_ms += int(rng.uniform(0.5, 1.5) * DAYS_BETWEEN_SENDS) * DAY_MS
        hour = rng.choice((8, 9, 10, 11, 17, 18, 19))
        sent_ms = day_ms + hour * 3_600_000 + rng.randrange(0, 3_600_000, 60_000)
        if sent_ms >= end_ms:
            return sends
        campaign = rng.choice(catalog.CAMPAIGNS)
        sends.append(
            (sent_ms, records.make_campaign_send(rng, campaign, records.from_millis(sent_ms)))
        )


def random_moment_ms(rng: random.Random, start_ms: int, end_ms: int, hours: Weighted[int]) -> int:
    """A time in [start, end): a random day, an hour by `hours`, a random minute."""
    if end_ms <= start_ms:
        return start_ms
    for _ in range(10):
        day = (
            start_ms
            - start_ms % DAY_MS
            + rng.randrange(0, (end_ms - start_ms) // DAY_MS + 1) * DAY_MS
        )
        moment = day + hours.pick(rng) * 3_600_000 + rng.randrange(3_600_000)
        if start_ms <= moment < end_ms:
            return moment
    return rng.randrange(start_ms, end_ms)


class _HistoryWriter:
    """Generates the history of one customer at a time and sends it to its outputs."""

    def __init__(
        self, rng, now_ms, window_start_ms, sends, kafka, mongo, weblogs_topic, emails_topic,
        identity: bool = True,
    ):  # fmt: skip
        self.rng = rng
        self.identity = identity  # anonymous browsing, shared devices, guest sales
        self.now_ms = now_ms
        self.window_start_ms = window_start_ms
        self.sends = sends
        self.kafka: KafkaOutput = kafka
        self.mongo: MongoBulkWriter = mongo
        self.weblogs_topic = weblogs_topic
        self.emails_topic = emails_topic
        self.counts = dict(
            customers=0, online_orders=0, instore_orders=0, weblogs=0, email_records=0, emails=0
        )
        self.receive_share = (
            records.YEARLY_PER_CUSTOMER["emails"] * DAYS_BETWEEN_SENDS / 365 / SUBSCRIBED_SHARE
        )

    def customer(self, customer_id: int) -> None:
        rng = self.rng
        window_ms = self.now_ms - self.window_start_ms
        if rng.random() < EXISTING_CUSTOMER_SHARE:
            created_ms = self.window_start_ms - rng.randrange(1, 3 * 365 * DAY_MS)
        else:  # the brand grows: more sign-ups lately
            created_ms = self.window_start_ms + int(window_ms * rng.random() ** 0.7)
            created_ms = min(created_ms, self.now_ms - 3_600_000)
        user = records.make_user(rng, customer_id, records.from_millis(created_ms))
        if rng.random() < 0.3:  # changed something in their profile since
            updated_ms = rng.randrange(created_ms, self.now_ms)
            user["updated_at"] = records.from_millis(updated_ms)
        self.mongo.add("users", user)
        self.counts["customers"] += 1

        active_from = max(created_ms, self.window_start_ms)
        years = (self.now_ms - active_from) / (365 * DAY_MS)
        activity = records.activity_level(rng)
        yearly = records.YEARLY_PER_CUSTOMER

        store = records.home_store(rng, user["address"]["city"])
        store_factor = 1.0 if store else 0.15
        for _ in range(
            records.poisson(rng, activity * yearly["instore_orders"] * years * store_factor)
        ):
            moment = random_moment_ms(rng, active_from, self.now_ms, STORE_HOUR_PICKER)
            order = records.make_instore_order(rng, customer_id, records.from_millis(moment), store)
            if self.identity and rng.random() < records.GUEST_SALE_SHARE:
                order = records.guest_sale(rng, order, user["email"])
            self.mongo.add("instore_orders", order)
            self.counts["instore_orders"] += 1

        sessions = [
            (random_moment_ms(rng, active_from, self.now_ms, ONLINE_HOUR_PICKER), False)
            for _ in range(records.poisson(rng, activity * yearly["sessions"] * years))
        ]
        sessions += [
            (random_moment_ms(rng, active_from, self.now_ms - 3_600_000, ONLINE_HOUR_PICKER), True)
            for _ in range(records.poisson(rng, activity * yearly["online_orders"] * years))
        ]
        sessions.sort()
        device = records.customer_device(customer_id) if self.identity else None
        for start_ms, with_order in sessions:
            self.session(customer_id, start_ms, with_order, user["address"], device)

        if rng.random() < SUBSCRIBED_SHARE:
            self.emails(customer_id, active_from, user["email"] if self.identity else None)

    def session(
        self, customer_id: int, start_ms: int, with_order: bool, address, device: str | None = None
    ) -> None:
        rng = self.rng
        session_id = records.uuid4(rng)
        key = str(customer_id)
        moment = start_ms
        views = records.plan_session(rng, with_order)
        user_ids = records.session_identity(rng, views, customer_id) if device else None
        for index, view in enumerate(views):
            if moment >= self.now_ms:
                break
            weblog = records.make_weblog(
                rng, customer_id, session_id, records.from_millis(moment), view
            )
            if device:
                weblog = records.with_identity(weblog, user_ids[index], device)
            self.kafka.produce(self.weblogs_topic, key, to_json(weblog))
            self.counts["weblogs"] += 1
            if with_order and view == ("checkout.html", "purchase", None):
                order = records.make_online_order(
                    rng, customer_id, records.from_millis(moment), address
                )
                self.mongo.add("online_orders", order)
                self.counts["online_orders"] += 1
            moment += records.page_gap_millis(rng)

    def emails(self, customer_id: int, active_from: int, address: str | None) -> None:
        rng = self.rng
        key = str(customer_id)
        open_rate = records.customer_open_rate(rng)
        for sent_ms, send in self.sends:
            if sent_ms < active_from or rng.random() >= self.receive_share:
                continue
            email_id = records.uuid4(rng)
            sent_ms += rng.randrange(0, 20 * 60_000)  # a mailing takes a while to go out
            sent_at = records.from_millis(sent_ms)
            response = records.plan_email_response(rng, open_rate)

            def record(opened, clicked, at_ms, email_id=email_id, sent_at=sent_at, send=send):
                return records.email_record(
                    email_id, customer_id, sent_at, send.campaign, send.items,
                    opened, clicked, records.from_millis(at_ms), recipient_email=address,
                )  # fmt: skip

            batch = [record(False, False, sent_ms)]
            if response.open_after_ms is not None and response.open_record:
                if sent_ms + response.open_after_ms < self.now_ms:
                    batch.append(record(True, False, sent_ms + response.open_after_ms))
            if (
                response.click_after_ms is not None
                and sent_ms + response.click_after_ms < self.now_ms
            ):
                batch.append(record(True, True, sent_ms + response.click_after_ms))
            if response.open_after_ms is not None and rng.random() < records.UNSUBSCRIBE_SHARE:
                # Unsubscribed some minutes after opening it; the record has the flags by then.
                at_ms = sent_ms + response.open_after_ms + rng.randrange(10_000, 600_000)
                click = response.click_after_ms
                clicked = click is not None and sent_ms + click <= at_ms
                if at_ms < self.now_ms:
                    unsubscribe = record(True, clicked, at_ms)
                    unsubscribe["unsubscribed"] = True
                    batch.append(unsubscribe)
            if len(batch) > 1 and rng.random() < OUT_OF_ORDER_EMAIL_SHARE:
                batch.reverse()
            for email in batch:
                self.kafka.produce(self.emails_topic, key, to_json(email))
            self.counts["emails"] += 1
            self.counts["email_records"] += len(batch)


def seed(
    settings: Settings,
    customers: int,
    days: int = 365,
    seed: int = 42,
    now: datetime | None = None,
    append: bool = False,
    progress: Callable[[str], None] | None = None,
    identity: bool = True,
) -> SeedSummary:
    """Write `customers` customers with `days` days of history up to `now` into Mongo and Kafka.

    Meant for an empty database: if `users` already holds documents, raises `SeedRefused`
    unless `append` is true, in which case the new customers get ids after the largest one.
    `identity` (the default): browsing is anonymous until a login (and on shared devices), some
    in-store sales are guest sales by email (records.py, "Identity stitching"); False writes
    every record with its user_id, as before identity stitching.
    """
    if customers < 0 or days < 1:
        raise ValueError("customers must be >= 0 and days >= 1")
    started = time.monotonic()
    now = (now or default_now()).astimezone(UTC)
    now = records.truncate_to_millis(now)
    now_ms = records.to_millis(now)
    window_start_ms = now_ms - days * DAY_MS

    client = MongoClient(settings.mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        db = client[settings.mongo_db]
        try:
            existing = db["users"].estimated_document_count()
        except pymongo.errors.ServerSelectionTimeoutError as error:
            raise RuntimeError(
                f"MongoDB at {redact_uri(settings.mongo_uri)} did not answer within 10 s; "
                "is it running?"
            ) from error
        first_id = 1
        if existing:
            if not append:
                raise SeedRefused(
                    f"database {settings.mongo_db!r} already holds {existing} users; seed writes "
                    "a history into an empty database. Drop it first, or pass --append to add "
                    "customers after the existing ones."
                )
            last = db["users"].find_one({}, {"id": 1}, sort=[("id", pymongo.DESCENDING)])
            first_id = int(last["id"]) + 1 if last else 1
        create_indexes(db)
        ensure_topics(settings)

        # Appended customers get a stream of their own (else their ids and ObjectIds repeat).
        rng = random.Random(seed if first_id == 1 else f"{seed}/{first_id}")
        sends = plan_campaign_sends(rng, window_start_ms, now_ms)
        kafka = KafkaOutput(settings, linger_ms=50, report_only_errors=True)
        mongo = MongoBulkWriter(db)
        writer = _HistoryWriter(
            rng, now_ms, window_start_ms, sends, kafka, mongo,
            settings.topic("weblogs"), settings.topic("marketing_emails"), identity,
        )  # fmt: skip
        try:
            for offset in range(customers):
                writer.customer(first_id + offset)
                if progress and (offset + 1) % 2_000 == 0:
                    progress(
                        f"seed: {offset + 1}/{customers} customers, "
                        f"{writer.counts['weblogs']} weblogs, "
                        f"{writer.counts['email_records']} email records "
                        f"({time.monotonic() - started:.1f} s)"
                    )
            mongo.flush()
        finally:
            mongo.close()
            kafka.flush()
    finally:
        client.close()

    return SeedSummary(
        customers=writer.counts["customers"],
        first_customer_id=first_id,
        last_customer_id=first_id + customers - 1,
        online_orders=writer.counts["online_orders"],
        instore_orders=writer.counts["instore_orders"],
        weblogs=writer.counts["weblogs"],
        email_records=writer.counts["email_records"],
        emails=writer.counts["emails"],
        now=now,
        days=days,
        seconds=time.monotonic() - started,
    )


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
