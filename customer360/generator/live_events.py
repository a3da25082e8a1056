"""The events of a running stream: who exists, what can change, and how each kind is made.

`LiveEvents.emit(kind, now)` produces one event: one Kafka message, or one Mongo insert, update
or delete (handed to the writer thread once per tick by `flush_writes`). A bad record rotates
through `bad_records.BAD_KINDS` and the sources. It starts from what exists (`discover`):
customers and recent orders in Mongo, emails awaiting opens and clicks in Kafka.
"""

from __future__ import annotations

import json
import random
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import DeleteOne, InsertOne, UpdateOne

from customer360.config import Settings
from customer360.generator import bad_records, catalog, records
from customer360.generator.event_mix import BAD, MEAN_PAGES
from customer360.generator.outputs import KafkaOutput, MongoOpsWriter, to_json
from customer360.generator.pending_emails import PendingEmail, discover_pending_emails

MAX_OPEN_SESSIONS = 2_000
MAX_ORDER_POOL = 20_000
MAX_PENDING_EMAILS = 50_000
# A customer opens a streamed email at the earliest this long after it was sent.
EMAIL_REACTION_DELAY = timedelta(seconds=2)


@dataclass
class _Session:
    user_id: int
    session_id: str
    pages: list[records.PageView]
    position: int = 0
    # Identity stitching: the browser's cookie, and the user_id each page carries (None before
    # the login); None when the stream writes every weblog with its user_id.
    device: str | None = None
    page_user_ids: list[int | None] | None = None


class LiveCustomers:
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


class LiveEvents:
    """The state of a running stream (who exists, what can be deleted, what is pending) and
    the making of each kind of event."""

    def __init__(
        self, settings: Settings, db, kafka: KafkaOutput, rng: random.Random, log,
        identity: bool = True,
    ):  # fmt: skip
        self.settings = settings
        # Anonymous browsing until a login, shared devices, guest sales (records.py, "Identity
        # stitching").
        self.identity = identity
        self.db = db
        self.kafka = kafka
        self.rng = rng
        self.log = log
        self.weblogs_topic = settings.topic("weblogs")
        self.emails_topic = settings.topic("marketing_emails")
        self.customers = LiveCustomers()
        self.next_customer_id = 1
        self.orders: list[tuple[str, Any]] = []  # (collection, _id)
        self.sessions: list[_Session] = []
        self.pending_emails: list[PendingEmail] = []
        self.incoming_emails: deque[tuple[datetime, PendingEmail]] = deque()  # sent just now
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
            {}, {"_id": 1, "id": 1, "first_name": 1, "last_name": 1, "address": 1, "email": 1}
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
        if "consent" in changes:
            changes["consent"]["email"]["at"] = records.truncate_to_millis(now)
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
            self.sessions.append(self._new_session(customer_id, with_order=True))

    def _instore_order(self, now: datetime) -> None:
        customer_id = self.customers.pick(self.rng)
        city = (self.customers.profiles[customer_id].get("address") or {}).get("city")
        store = records.home_store(self.rng, city)
        order = records.make_instore_order(self.rng, customer_id, now, store)
        email = self.customers.profiles[customer_id].get("email")
        guest = self.identity and self.rng.random() < records.GUEST_SALE_SHARE
        if guest and isinstance(email, str):
            order = records.guest_sale(self.rng, order, email)
            self._insert("instore_orders", "guest_sale", order)
            return
        self._insert("instore_orders", "instore_order", order)

    def _new_session(self, customer_id: int, with_order: bool = False) -> _Session:
        rng = self.rng
        session = _Session(customer_id, records.uuid4(rng), records.plan_session(rng, with_order))
        if self.identity:
            session.device = records.customer_device(customer_id)
            session.page_user_ids = records.session_identity(rng, session.pages, customer_id)
        return session

    def _weblog(self, now: datetime) -> None:
        rng = self.rng
        while True:
            start_new = not self.sessions or (
                len(self.sessions) < MAX_OPEN_SESSIONS and rng.random() < 1 / MEAN_PAGES
            )
            if start_new:
                session = self._new_session(self.customers.pick(rng))
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
        user_id: int | None = session.user_id
        if session.device is not None and session.page_user_ids is not None:
            user_id = session.page_user_ids[session.position]
        session.position += 1
        if session.position >= len(session.pages):
            self.sessions[index] = self.sessions[-1]
            self.sessions.pop()
        weblog = records.make_weblog(rng, session.user_id, session.session_id, now, view)
        ids = {"event_id": weblog["event_id"], "user_id": user_id}
        if session.device is not None:
            weblog = records.with_identity(weblog, user_id, session.device)
            ids["anonymous_id"] = session.device
        # Keyed by the customer behind the session, anonymous or not (as `seed` does).
        kind = "weblog" if user_id is not None else "anonymous_weblog"
        self._kafka("weblogs", kind, str(session.user_id), to_json(weblog), ids)

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
        email_address = self.customers.profiles[customer_id].get("email") if self.identity else None
        recipient = email_address if isinstance(email_address, str) else None
        email = records.email_record(
            email_id, customer_id, now, send.campaign, send.items, False, False, now,
            recipient_email=recipient,
        )  # fmt: skip
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
        if response.open_after_ms is not None and rng.random() < records.UNSUBSCRIBE_SHARE:
            steps.append("unsubscribe")  # after opening (and clicking) it
        if steps and len(self.pending_emails) + len(self.incoming_emails) < MAX_PENDING_EMAILS:
            pending = PendingEmail(
                email_id, customer_id, email["date"], send.campaign, list(send.items), steps,
                recipient_email=recipient,
            )  # fmt: skip
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

    def _email_record(self, pending: PendingEmail, step: str, when: datetime) -> None:
        if step == "click":
            pending.clicked = True
        # An unsubscribe record carries the flags the email has by then (records.email_record).
        clicked = step == "click" or (step == "unsubscribe" and pending.clicked)
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
        if step == "unsubscribe":
            email["unsubscribed"] = True
        if pending.recipient_email is not None:
            email["recipient_email"] = pending.recipient_email
        kind = "email_unsubscribed" if step == "unsubscribe" else f"email_{step}"
        self._kafka(
            "marketing_emails", kind, str(pending.user_id), to_json(email),
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
