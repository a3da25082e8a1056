"""`stream`: keeps producing live activity into Mongo and Kafka at a steady rate.

Every event is one record: one Kafka message, or one Mongo insert/update/delete. Kinds follow
the proportions of the seeded history (`STREAM_MIX`) through a smooth weighted round-robin, so
over any window the mix is exact and even a rare kind (a user deletion) turns up every
~1,000 events; what each event contains is random. A `bad_share` of the events are bad records,
rotating through `bad_records.BAD_KINDS` and the sources.

Pacing: every `tick_s` the number of events due since the start (`rate * elapsed`) is produced;
inserts due in one tick go to Mongo in one `insert_many` per collection.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from pymongo import DeleteOne, InsertOne, MongoClient, UpdateOne

from customer360.config import Settings
from customer360.generator import bad_records, catalog, records
from customer360.generator.history import create_indexes
from customer360.generator.outputs import KafkaOutput, MongoOpsWriter, to_json
from customer360.kafka_topics import ensure_topics
from customer360.services.addresses import redact_uri


def _mean_session_pages(with_order: bool) -> float:
    rng = random.Random(0)
    return sum(len(records.plan_session(rng, with_order)) for _ in range(2_000)) / 2_000


MEAN_PAGES = _mean_session_pages(False)
MEAN_ORDER_PAGES = _mean_session_pages(True)
_yearly = records.YEARLY_PER_CUSTOMER
_store_city_share = sum(w for c, _, w in catalog.CITIES if c in records.STORE_CITIES) / sum(
    w for _, _, w in catalog.CITIES
)
# Events per customer-year by kind: the same model as `seed`, plus the changes a history does
# not show as records (profile updates, deletions, sign-ups).
STREAM_MIX: dict[str, float] = {
    "weblog": _yearly["sessions"] * MEAN_PAGES + _yearly["online_orders"] * MEAN_ORDER_PAGES,
    "email_sent": _yearly["emails"],
    "email_followup": _yearly["emails"]
    * records.MEAN_OPEN_RATE
    * (1 + records.MEAN_CLICK_GIVEN_OPEN),
    "online_order": _yearly["online_orders"],
    "instore_order": _yearly["instore_orders"]
    * (_store_city_share + 0.15 * (1 - _store_city_share)),
    "new_customer": 0.5,
    "profile_update": 1.0,
    "user_delete": 0.1,
    "order_delete": 0.1,
    # A store or the support desk corrects an order: one more of its first item.
    "order_correction": 0.2,
}
BAD = "bad"
MAX_OPEN_SESSIONS = 2_000
MAX_ORDER_POOL = 20_000
MAX_PENDING_EMAILS = 50_000
# A customer opens a streamed email at the earliest this long after it was sent.
EMAIL_REACTION_DELAY = timedelta(seconds=2)


class SmoothWeightedRoundRobin:
    """Picks names in proportion to their weights, interleaved (nginx's smooth WRR).

    After n picks every name has been picked within one of n * weight / total times.
    """

    def __init__(self, weights: Mapping[str, float]):
        self.weights = {name: float(w) for name, w in weights.items() if w > 0}
        if not self.weights:
            raise ValueError("at least one weight must be positive")
        self.total = sum(self.weights.values())
        self.current = dict.fromkeys(self.weights, 0.0)

    def next(self) -> str:
        best = None
        for name, weight in self.weights.items():
            self.current[name] += weight
            if best is None or self.current[name] > self.current[best]:
                best = name
        self.current[best] -= self.total
        return best


@dataclass
class StreamSummary:
    seconds: float
    events: int
    by_kind: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    bad_by_kind: Counter = field(default_factory=Counter)
    kafka_failed: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items()))
        sources = ", ".join(f"{k} {v}" for k, v in sorted(self.by_source.items()))
        bad = ", ".join(f"{k} {v}" for k, v in sorted(self.bad_by_kind.items())) or "none"
        return (
            f"streamed {self.events} events in {self.seconds:.1f} s ({self.rate:.1f} events/s)\n"
            f"  by source: {sources}\n  by kind: {kinds}\n  bad records: {bad}"
            + (f"\n  Kafka delivery failures: {self.kafka_failed}" if self.kafka_failed else "")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "events": self.events,
            "rate": self.rate,
            "by_kind": dict(self.by_kind),
            "by_source": dict(self.by_source),
            "bad_by_kind": dict(self.bad_by_kind),
            "kafka_failed": self.kafka_failed,
        }


@dataclass
class _Session:
    user_id: int
    session_id: str
    pages: list[records.PageView]
    position: int = 0


@dataclass
class _PendingEmail:
    """An email the customer will still open and/or click: `steps` in order."""

    email_id: str
    user_id: int
    date: str  # ISO send time, as in its first record
    campaign: str
    items: list[str]
    steps: list[str]  # "open" / "click"


class _Customers:
    """Live customers with O(1) random pick and removal, and what profile changes need."""

    def __init__(self):
        self.ids: list[int] = []
        self.position: dict[int, int] = {}
        self.profiles: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, customer_id: int) -> bool:
        return customer_id in self.position

    def add(self, profile: dict[str, Any]) -> None:
        customer_id = profile["id"]
        if customer_id in self.position:
            return
        self.position[customer_id] = len(self.ids)
        self.ids.append(customer_id)
        self.profiles[customer_id] = profile

    def remove(self, customer_id: int) -> None:
        index = self.position.pop(customer_id)
        last = self.ids.pop()
        if last != customer_id:
            self.ids[index] = last
            self.position[last] = index
        self.profiles.pop(customer_id, None)

    def pick(self, rng: random.Random) -> int:
        return self.ids[rng.randrange(len(self.ids))]


def discover_pending_emails(
    settings: Settings, rng: random.Random, per_partition: int = 3_000, timeout_s: float = 5.0
) -> list[_PendingEmail]:
    """Emails at the end of the `marketing_emails` topic that a customer may still open/click.

    Reads the last `per_partition` records of each partition; takes each email's latest flags.
    """
    topic = settings.topic("marketing_emails")
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "c360-generator-discovery",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    latest: dict[str, dict[str, Any]] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        assignments, remaining = [], set()
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            if high > low:
                assignments.append(TopicPartition(topic, partition, max(low, high - per_partition)))
                remaining.add(partition)
        if not assignments:
            return []
        consumer.assign(assignments)
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    remaining.discard(message.partition())
                continue
            try:
                email = json.loads(message.value())
                email_id, user_id = email["email_id"], email["user_id"]
                if not isinstance(user_id, int) or isinstance(user_id, bool):
                    continue
                opened, clicked = bool(email["email_opened"]), bool(email["email_clicked"])
                known = latest.get(email_id)
                if known is not None:
                    opened, clicked = opened or known["opened"], clicked or known["clicked"]
                latest[email_id] = {**email, "opened": opened, "clicked": clicked}
            except (ValueError, KeyError, TypeError):
                continue  # a bad record
    finally:
        consumer.close()
    pending = []
    for email in latest.values():
        if email["clicked"]:
            continue
        if email["opened"]:
            steps = ["click"] if rng.random() < records.MEAN_CLICK_GIVEN_OPEN else []
        elif rng.random() < records.MEAN_OPEN_RATE:
            steps = ["open", "click"] if rng.random() < records.MEAN_CLICK_GIVEN_OPEN else ["open"]
        else:
            steps = []
        if steps:
            pending.append(
                _PendingEmail(
                    email["email_id"],
                    email["user_id"],
                    email["date"],
                    email.get("campaign", ""),
                    list(email.get("items") or []),
                    steps,
                )
            )
    return pending


class _Streamer:
    """The state of a running stream: who exists, what can be deleted, what is pending."""

    def __init__(self, settings: Settings, db, kafka: KafkaOutput, rng: random.Random, log):
        self.settings = settings
        self.db = db
        self.kafka = kafka
        self.rng = rng
        self.log = log
        self.weblogs_topic = settings.topic("weblogs")
        self.emails_topic = settings.topic("marketing_emails")
        self.customers = _Customers()
        self.next_customer_id = 1
        self.orders: list[tuple[str, Any]] = []  # (collection, _id)
        self.sessions: list[_Session] = []
        self.pending_emails: list[_PendingEmail] = []
        self.incoming_emails: deque[tuple[datetime, _PendingEmail]] = deque()  # sent just now
        self.campaign_send: records.CampaignSend | None = None
        self.campaign_left = 0
        # This tick's Mongo writes per collection, in order: (operation, log entry, inserted).
        self.writes: dict[str, list[tuple[Any, dict[str, Any], dict[str, Any] | None]]] = {}
        self.mongo = MongoOpsWriter(db, on_written=self._log_mongo if log is not None else None)
        self.by_kind: Counter = Counter()
        self.by_source: Counter = Counter()
        self.bad_by_kind: Counter = Counter()
        self.events = 0
        self.bad_count = 0

    # -- start-up ---------------------------------------------------------------------------

    def discover(self) -> None:
        """Load existing customers and recent orders from Mongo, pending emails from Kafka."""
        users = self.db["users"]
        for user in users.find(
            {}, {"_id": 1, "id": 1, "first_name": 1, "last_name": 1, "address": 1}
        ):
            if isinstance(user.get("id"), int):
                self.customers.add(user)
                self.next_customer_id = max(self.next_customer_id, user["id"] + 1)
        for collection in ("online_orders", "instore_orders"):
            # The last inserted ($natural order: no sort of the whole collection).
            recent = self.db[collection].find({}, {"_id": 1}).sort("$natural", -1).limit(1_000)
            self.orders.extend((collection, order["_id"]) for order in recent)
        self.rng.shuffle(self.orders)
        self.pending_emails = discover_pending_emails(self.settings, self.rng)

    # -- outputs ----------------------------------------------------------------------------

    def _count(self, kind: str, source: str, bad_kind: str | None = None) -> None:
        self.events += 1
        self.by_kind[kind] += 1
        self.by_source[source] += 1
        if bad_kind:
            self.bad_by_kind[bad_kind] += 1

    def _kafka(
        self,
        source: str,
        kind: str,
        key: str | None,
        value: bytes,
        ids: dict[str, Any],
        bad_kind: str | None = None,
    ) -> None:
        topic = self.weblogs_topic if source == "weblogs" else self.emails_topic
        opaque = None
        if self.log is not None:
            opaque = {"source": source, "kind": kind, "topic": topic, "key": key, **ids}
            if bad_kind:
                opaque["bad"] = bad_kind
                if "event_id" not in ids and "email_id" not in ids:
                    opaque["value"] = value.decode(errors="replace")
        self.kafka.produce(topic, key, value, opaque)
        self._count(kind, source, bad_kind)

    def _log_mongo(self, entries: list[dict[str, Any]]) -> None:
        self.log.write("".join(json.dumps(entry, default=str) + "\n" for entry in entries))

    def _write(
        self,
        collection: str,
        kind: str,
        operation: Any,
        entry: dict[str, Any],
        inserted: dict[str, Any] | None = None,
        bad_kind: str | None = None,
    ) -> None:
        entry = {"source": collection, "kind": kind, **entry}
        if bad_kind:
            entry["bad"] = bad_kind
        self.writes.setdefault(collection, []).append((operation, entry, inserted))
        self._count(kind, collection, bad_kind)

    def _insert(self, collection: str, kind: str, document: dict[str, Any], bad_kind=None) -> None:
        owner = "id" if collection == "users" else "user_id"
        entry = {"op": "insert", "_id": document["_id"], owner: document.get(owner)}
        self._write(collection, kind, InsertOne(document), entry, document, bad_kind)

    def flush_writes(self) -> None:
        """Hand this tick's Mongo writes to the writer thread: one ordered bulk per collection.

        Documents inserted now can be updated or deleted from the next tick on: the writer
        applies the bulks in the order they were handed over.
        """
        for collection, writes in self.writes.items():
            self.mongo.submit(collection, [op for op, _, _ in writes], [e for _, e, _ in writes])
            for _, entry, document in writes:
                if document is None or "bad" in entry:
                    continue
                if collection == "users":
                    self.customers.add(document)
                else:
                    self._remember_order(collection, document["_id"])
        self.writes = {}

    def _remember_order(self, collection: str, order_id: Any) -> None:
        if len(self.orders) >= MAX_ORDER_POOL:
            self.orders[self.rng.randrange(len(self.orders))] = (collection, order_id)
        else:
            self.orders.append((collection, order_id))

    # -- events -----------------------------------------------------------------------------

    def emit(self, kind: str, now: datetime) -> None:
        """Produce one event of `kind` (or of the kind it falls back to when it cannot happen)."""
        if kind == BAD:
            self.bad(now)
            return
        if kind != "new_customer" and not self.customers:
            kind = "new_customer"  # an empty database starts with sign-ups
        if kind in ("order_delete", "order_correction") and not self.orders:
            kind = "online_order"
        if kind == "email_followup":
            while self.incoming_emails and self.incoming_emails[0][0] <= now:
                self.pending_emails.append(self.incoming_emails.popleft()[1])
            if not self.pending_emails:
                kind = "email_sent"
        getattr(self, f"_{kind}")(now)

    def _new_customer(self, now: datetime) -> None:
        user = records.make_user(self.rng, self.next_customer_id, now)
        self.next_customer_id += 1
        self._insert("users", "new_customer", user)

    def _profile_update(self, now: datetime) -> None:
        customer_id = self.customers.pick(self.rng)
        profile = self.customers.profiles[customer_id]
        changes = records.profile_change(self.rng, profile)
        profile.update(changes)
        update = UpdateOne(
            {"_id": profile["_id"]},
            {"$set": {**changes, "updated_at": records.truncate_to_millis(now)}},
        )
        self._write(
            "users", "profile_update", update,
            {"op": "update", "_id": profile["_id"], "id": customer_id, "fields": sorted(changes)},
        )  # fmt: skip

    def _user_delete(self, now: datetime) -> None:
        customer_id = self.customers.pick(self.rng)
        profile = self.customers.profiles[customer_id]
        self.customers.remove(customer_id)
        self._write(
            "users", "user_delete", DeleteOne({"_id": profile["_id"]}),
            {"op": "delete", "_id": profile["_id"], "id": customer_id},
        )  # fmt: skip

    def _order_delete(self, now: datetime) -> None:
        collection, order_id = self.orders.pop(self.rng.randrange(len(self.orders)))
        self._write(
            collection, "order_delete", DeleteOne({"_id": order_id}),
            {"op": "delete", "_id": order_id},
        )  # fmt: skip

    def _order_correction(self, now: datetime) -> None:
        collection, order_id = self.orders[self.rng.randrange(len(self.orders))]
        self._write(
            collection, "order_correction",
            UpdateOne({"_id": order_id}, {"$inc": {"items.0.quantity": 1}}),
            {"op": "update", "_id": order_id, "fields": ["items.0.quantity"]},
        )  # fmt: skip

    def _online_order(self, now: datetime) -> None:
        customer_id = self.customers.pick(self.rng)
        address = self.customers.profiles[customer_id].get("address")
        order = records.make_online_order(self.rng, customer_id, now, address)
        self._insert("online_orders", "online_order", order)
        if len(self.sessions) < MAX_OPEN_SESSIONS:  # the checkout pages follow
            self.sessions.append(
                _Session(customer_id, records.uuid4(self.rng), records.plan_session(self.rng, True))
            )

    def _instore_order(self, now: datetime) -> None:
        customer_id = self.customers.pick(self.rng)
        city = (self.customers.profiles[customer_id].get("address") or {}).get("city")
        store = records.home_store(self.rng, city)
        order = records.make_instore_order(self.rng, customer_id, now, store)
        self._insert("instore_orders", "instore_order", order)

    def _weblog(self, now: datetime) -> None:
        rng = self.rng
        while True:
            start_new = not self.sessions or (
                len(self.sessions) < MAX_OPEN_SESSIONS and rng.random() < 1 / MEAN_PAGES
            )
            if start_new:
                session = _Session(
                    self.customers.pick(rng), records.uuid4(rng), records.plan_session(rng)
                )
                self.sessions.append(session)
                index = len(self.sessions) - 1
            else:
                index = rng.randrange(len(self.sessions))
                session = self.sessions[index]
            if session.user_id not in self.customers:  # deleted meanwhile: the session ends
                self.sessions[index] = self.sessions[-1]
                self.sessions.pop()
                continue
            break
        view = session.pages[session.position]
        session.position += 1
        if session.position >= len(session.pages):
            self.sessions[index] = self.sessions[-1]
            self.sessions.pop()
        weblog = records.make_weblog(rng, session.user_id, session.session_id, now, view)
        self._kafka(
            "weblogs", "weblog", str(session.user_id), to_json(weblog),
            {"event_id": weblog["event_id"], "user_id": session.user_id},
        )  # fmt: skip

    def _campaign(self, now: datetime) -> records.CampaignSend:
        if self.campaign_send is None or self.campaign_left <= 0:
            campaign = self.rng.choice(catalog.CAMPAIGNS)
            self.campaign_send = records.make_campaign_send(self.rng, campaign, now)
            self.campaign_left = self.rng.randint(200, 2_000)
        self.campaign_left -= 1
        return self.campaign_send

    def _email_sent(self, now: datetime) -> None:
        rng = self.rng
        customer_id = self.customers.pick(rng)
        send = self._campaign(now)
        email_id = records.uuid4(rng)
        email = records.email_record(
            email_id, customer_id, now, send.campaign, send.items, False, False, now
        )
        self._kafka(
            "marketing_emails", "email_sent", str(customer_id), to_json(email),
            {"email_id": email_id, "updated_at": email["updated_at"], "user_id": customer_id,
             "email_opened": False, "email_clicked": False},
        )  # fmt: skip
        response = records.plan_email_response(rng, records.MEAN_OPEN_RATE)
        steps = []
        if response.open_after_ms is not None and response.open_record:
            steps.append("open")
        if response.click_after_ms is not None:
            steps.append("click")
        if steps and len(self.pending_emails) + len(self.incoming_emails) < MAX_PENDING_EMAILS:
            pending = _PendingEmail(
                email_id, customer_id, email["date"], send.campaign, list(send.items), steps
            )
            self.incoming_emails.append((now + EMAIL_REACTION_DELAY, pending))

    def _email_followup(self, now: datetime) -> None:
        rng = self.rng
        while True:
            if not self.pending_emails:
                self._email_sent(now)
                return
            index = rng.randrange(len(self.pending_emails))
            pending = self.pending_emails[index]
            if pending.user_id in self.customers:
                break
            self.pending_emails[index] = self.pending_emails[-1]  # the customer left
            self.pending_emails.pop()
        step = pending.steps.pop(0)
        out_of_order = step == "open" and pending.steps == ["click"] and rng.random() < 0.1
        if out_of_order:  # the click's record overtakes the open's
            pending.steps.pop(0)
            self._email_record(pending, "click", now)
            self._email_record(pending, "open", now - timedelta(seconds=rng.uniform(0.2, 1.5)))
        else:
            self._email_record(pending, step, now)
        if not pending.steps:
            self.pending_emails[index] = self.pending_emails[-1]
            self.pending_emails.pop()

    def _email_record(self, pending: _PendingEmail, step: str, when: datetime) -> None:
        clicked = step == "click"
        email = {
            "email_id": pending.email_id,
            "user_id": pending.user_id,
            "date": pending.date,
            "campaign": pending.campaign,
            "items": pending.items,
            "email_opened": True,
            "email_clicked": clicked,
            "updated_at": records.iso(when),
        }
        self._kafka(
            "marketing_emails", f"email_{step}", str(pending.user_id), to_json(email),
            {"email_id": pending.email_id, "updated_at": email["updated_at"],
             "user_id": pending.user_id, "email_opened": True, "email_clicked": clicked},
        )  # fmt: skip

    # -- bad records --------------------------------------------------------------------------

    def _good_kafka_record(self, source: str, user_id: int, now: datetime) -> dict[str, Any]:
        rng = self.rng
        if source == "weblogs":
            view = ("home.html", "view", None)
            return records.make_weblog(rng, user_id, records.uuid4(rng), now, view)
        send = self._campaign(now)
        return records.email_record(
            records.uuid4(rng), user_id, now, send.campaign, send.items, False, False, now
        )

    def bad(self, now: datetime) -> None:
        rng = self.rng
        turn = self.bad_count
        self.bad_count += 1
        bad_kind = bad_records.BAD_KINDS[turn % len(bad_records.BAD_KINDS)]
        sources = ("weblogs", "marketing_emails")
        if bad_kind == "unknown_customer":
            sources += ("online_orders", "instore_orders")
        source = sources[(turn // len(bad_records.BAD_KINDS)) % len(sources)]
        unknown_id = bad_records.unknown_customer_id(rng, self.next_customer_id)
        kind = f"bad_{bad_kind}"
        if source == "online_orders":
            order = records.make_online_order(rng, unknown_id, now, None)
            self._insert(source, kind, order, bad_kind)
            return
        if source == "instore_orders":
            order = records.make_instore_order(rng, unknown_id, now, None)
            self._insert(source, kind, order, bad_kind)
            return
        user_id = self.customers.pick(rng) if self.customers else unknown_id
        good = self._good_kafka_record(source, user_id, now)
        key: str | None = str(user_id)
        if bad_kind == "invalid_json":
            value = bad_records.invalid_json(rng, good)
        elif bad_kind == "missing_user_id":
            value, key = to_json(bad_records.missing_user_id(good)), None
        elif bad_kind == "wrong_user_id_type":
            record = bad_records.wrong_user_id_type(rng, good)
            value, key = to_json(record), str(record["user_id"])
        elif bad_kind == "wrong_date_type":
            value = to_json(bad_records.wrong_date_type(rng, good))
        else:
            good["user_id"] = unknown_id
            value, key = to_json(good), str(unknown_id)
        ids = {"event_id": good["event_id"]} if "event_id" in good else {
            "email_id": good["email_id"], "updated_at": good["updated_at"]}  # fmt: skip
        if bad_kind == "invalid_json":
            ids = {}
        self._kafka(source, kind, key, value, ids, bad_kind)


class _SharedLog:
    """The `--log` file: written by the producing thread and the Mongo writer thread."""

    def __init__(self, path: Path):
        self.file = path.open("a", encoding="utf-8", buffering=1 << 16)
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            self.file.write(text)

    def close(self) -> None:
        with self.lock:
            self.file.close()


def _log_delivery(log: _SharedLog) -> Callable[[Message, KafkaError | None, Any], None]:
    def write(message: Message, error: KafkaError | None, entry: dict[str, Any]) -> None:
        if error is None:
            entry["partition"] = message.partition()
            entry["offset"] = message.offset()
        else:
            entry["error"] = str(error)
        log.write(json.dumps(entry, default=str) + "\n")

    return write


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def stream(
    settings: Settings,
    rate: float,
    duration: float | None = None,
    bad_share: float = 0.01,
    seed: int | None = None,
    log_path: Path | str | None = None,
    progress: Callable[[str], None] | None = print_progress,
    progress_every_s: float = 5.0,
    mix: Mapping[str, float] | None = None,
    tick_s: float = 0.05,
    stop: threading.Event | None = None,
) -> StreamSummary:
    """Produce `rate` events per second for `duration` seconds (forever if None).

    Stops at the next tick when `stop` is set, on Ctrl-C or on SIGTERM (a second Ctrl-C stops at
    once); always flushes what it produced.
    `mix` overrides the weights of `STREAM_MIX` (kinds missing from it keep theirs).
    `log_path`: append one JSON line per record produced (Kafka ones once delivered, with
    partition and offset).
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    if not 0 <= bad_share < 1:
        raise ValueError("bad_share must be in [0, 1)")
    weights = {**STREAM_MIX, **(mix or {})}
    unknown = set(weights) - set(STREAM_MIX)
    if unknown:
        raise ValueError(f"unknown kinds in mix: {sorted(unknown)}; known: {sorted(STREAM_MIX)}")
    if bad_share:
        weights[BAD] = bad_share / (1 - bad_share) * sum(weights.values())
    scheduler = SmoothWeightedRoundRobin(weights)
    rng = random.Random(seed)
    stop = stop or threading.Event()

    ensure_topics(settings)
    client = MongoClient(settings.mongo_uri, serverSelectionTimeoutMS=10_000)
    log = _SharedLog(Path(log_path)) if log_path else None
    kafka = KafkaOutput(
        settings, linger_ms=5, on_delivered=_log_delivery(log) if log is not None else None
    )
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():

        def stop_at_next_tick(signum, frame):
            if stop.is_set():  # asked twice: stop now
                raise KeyboardInterrupt
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[signum] = signal.signal(signum, stop_at_next_tick)
    try:
        db = client[settings.mongo_db]
        try:
            create_indexes(db)  # updates and deletes find users by id
        except pymongo.errors.ServerSelectionTimeoutError as error:
            raise RuntimeError(
                f"MongoDB at {redact_uri(settings.mongo_uri)} did not answer within 10 s; "
                "is it running?"
            ) from error
        streamer = _Streamer(settings, db, kafka, rng, log)
        streamer.discover()
        if progress:
            progress(
                f"stream: {len(streamer.customers)} customers, {len(streamer.orders)} recent "
                f"orders, {len(streamer.pending_emails)} emails awaiting opens/clicks; "
                f"{rate:g} events/s" + (f" for {duration:g} s" if duration else " until Ctrl-C")
            )
        started = time.monotonic()
        next_progress = started + progress_every_s
        ticks = 0
        try:
            while True:
                elapsed = time.monotonic() - started
                final = stop.is_set() or (duration is not None and elapsed >= duration)
                if duration is not None:
                    elapsed = min(elapsed, duration)
                due = int(rate * elapsed) - streamer.events
                tick_wall, tick_at = datetime.now(UTC), time.monotonic() - started
                for _ in range(max(0, due)):
                    # Dated when it was due, so the events of one tick do not share a time.
                    late_s = max(0.0, tick_at - (streamer.events + 1) / rate)
                    streamer.emit(scheduler.next(), tick_wall - timedelta(seconds=late_s))
                streamer.flush_writes()
                kafka.poll()
                if progress and time.monotonic() >= next_progress:
                    next_progress += progress_every_s
                    progress(_progress_line(streamer, time.monotonic() - started))
                if final:
                    break
                ticks += 1
                pause = started + ticks * tick_s - time.monotonic()
                if pause > 0:  # (not stop.wait: a signal handler setting it could deadlock)
                    time.sleep(pause)
        except KeyboardInterrupt:
            if progress:
                progress("stream: interrupted, flushing")
        finally:
            seconds = time.monotonic() - started
            streamer.flush_writes()
            streamer.mongo.close()
            kafka.producer.flush(30)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        if log is not None:
            log.close()
        client.close()
    summary = StreamSummary(
        seconds=seconds,
        events=streamer.events,
        by_kind=streamer.by_kind,
        by_source=streamer.by_source,
        bad_by_kind=streamer.bad_by_kind,
        kafka_failed=kafka.failed,
    )
    return summary


def _progress_line(streamer: _Streamer, seconds: float) -> str:
    top = ", ".join(f"{k} {v}" for k, v in streamer.by_kind.most_common())
    return (
        f"stream: {seconds:.0f} s, {streamer.events} events "
        f"({streamer.events / max(seconds, 1e-9):.1f}/s): {top}"
    )
