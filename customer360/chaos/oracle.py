"""The expected marts, computed in plain Python from what Kafka and MongoDB hold.

Independent of dbt and SQL: it reads every message of the two topics and the current documents
of the three collections, applies the contract of dbt/models/marts/*.yml and the rejection rules
of dbt/macros/rejections.sql, and returns each mart as a set of rows comparable with the
warehouse's (`marts_rows`, which reads each mart as a multiset: a row the warehouse holds twice
is counted twice, so verify.compare_marts sees it).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from pymongo import MongoClient

from customer360.chaos.audience_oracle import AUDIENCE_COLUMNS, expected_members
from customer360.chaos.identity_oracle import (
    IDENTITY_COLUMNS,
    WHITESPACE,
    UserChange,
    address_owner,
    address_periods,
    changes_from_documents,
    consent_set_at,
    expected_identities,
    normalized_email,
    read_user_changes,
)
from customer360.chaos.traits_oracle import (
    TRAITS_COLUMNS,
    expected_traits,
    is_sale,
    new_orders_index,
    not_sold_statuses,
)
from customer360.config import KAFKA_TOPICS, MONGO_COLLECTIONS, Settings

# customer_details: the customer's users document and `age` on the day it is read.
DETAILS_COLUMNS = (
    "customer_id", "first_name", "last_name", "email", "gender", "dob", "age", "city", "country",
)  # fmt: skip
# customer_360: every column but `as_of`. as_of is the greatest MongoDB change time (cluster
# time) of the customer's users document and orders, deleted orders and orders since moved to
# another customer included; MongoDB's current documents carry no change time and keep nothing
# of a deleted order or of an order's earlier owner, so the sources cannot give it exactly, and
# reading those times from raw would make the oracle repeat what it checks.
CUSTOMER_360_COLUMNS = (
    *DETAILS_COLUMNS,
    "online_orders", "online_items_purchased", "online_amount_spent",
    "instore_orders", "instore_items_purchased", "instore_amount_spent",
    "total_orders", "total_items_purchased", "total_amount_spent",
    "favourite_product", "favourite_product_purchases",
    "last_instore_order_at", "last_online_order_at", "last_email_sent_at",
    "last_email_opened_at", "last_email_clicked_at", "last_website_visit_at",
    "last_website_login_at",
    "latest_error_message", "latest_error_page", "latest_error_at",
    *TRAITS_COLUMNS[1:],
    "email_consent", "email_consent_since",
)  # fmt: skip
# Each mart as compared: the columns that define it (watermark bookkeeping left out).
MART_COLUMNS = {
    "customer_purchase_stats": (
        "customer_id", "channel", "number_of_orders", "number_of_items_purchased",
        "items_per_order", "amount_spent",
    ),
    "customer_popular_items": ("customer_id", "product_name", "purchases", "last_purchased_at"),
    "customer_activity": ("customer_id", "event", "last_at"),
    "customer_recent_errors": ("customer_id", "error_message", "page", "last_at", "occurrences"),
    "customer_details": DETAILS_COLUMNS,
    "customer_360": CUSTOMER_360_COLUMNS,
    "customer_traits": TRAITS_COLUMNS,
    "customer_consent": (
        "customer_id", "email_consent", "email_consent_since", "email_consent_source",
    ),
    "customer_identities": IDENTITY_COLUMNS,
    "customer_audiences": AUDIENCE_COLUMNS,
}  # fmt: skip
# How many leading columns of each mart's rows identify the row (customer and what it is about).
MART_KEYS = {
    "customer_purchase_stats": 2,  # customer_id, channel
    "customer_popular_items": 2,  # customer_id, product_name
    "customer_activity": 2,  # customer_id, event
    "customer_recent_errors": 3,  # customer_id, error_message, page
    "customer_details": 1,
    "customer_360": 1,
    "customer_traits": 1,
    "customer_consent": 1,
    "customer_identities": 3,  # customer_id, identifier_type, identifier
    "customer_audiences": 2,  # audience, customer_id
}
_INTEGER_TEXT = re.compile(r"-?[0-9]+")
# `json_date`'s format, %Y-%m-%d: one to four digit year, one or two digit month and day.
_DATE_TEXT = re.compile(r"([0-9]{1,4})-([0-9]{1,2})-([0-9]{1,2})")
CENT = Decimal("0.01")
MICRO = Decimal("0.000001")
# The largest amount a line item may have, in millionths (DECIMAL(28, 6), the price's type):
# staging rejects an order with a larger one.
LARGEST_AMOUNT_MICROS = 10**28 - 1


@dataclass(frozen=True)
class KafkaMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class SourceData:
    """Everything the sources hold: Kafka messages per source, Mongo documents per collection."""

    messages: dict[str, list[KafkaMessage]] = field(default_factory=dict)
    documents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Every change of a users document with MongoDB's change time (identity_oracle.py); None:
    # each current document stands for the one change that set it.
    user_changes: list[UserChange] | None = None


def read_kafka(settings: Settings, timeout_s: float = 60.0) -> dict[str, list[KafkaMessage]]:
    """Every message of both topics, from the low to the high watermark of each partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "c360-chaos-oracle",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 8 * 1024 * 1024,
        }
    )
    out: dict[str, list[KafkaMessage]] = {}
    try:
        for source in KAFKA_TOPICS:
            topic = settings.topic(source)
            metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
            assignments, ends = [], {}
            for partition in metadata.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout_s
                )
                if high > low:
                    assignments.append(TopicPartition(topic, partition, low))
                    ends[partition] = high
            messages: list[KafkaMessage] = []
            consumer.assign(assignments)
            remaining = set(ends)
            while remaining:
                message = consumer.poll(timeout_s)
                if message is None:
                    raise RuntimeError(f"Kafka at {settings.kafka_bootstrap} stopped answering")
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        remaining.discard(message.partition())
                        continue
                    raise RuntimeError(f"reading {topic} failed: {message.error()}")
                if message.offset() < ends[message.partition()]:
                    messages.append(
                        KafkaMessage(
                            topic, message.partition(), message.offset(), message.key(),
                            message.value(),
                        )
                    )  # fmt: skip
                if message.offset() + 1 >= ends[message.partition()]:
                    remaining.discard(message.partition())
            consumer.unassign()
            out[source] = messages
    finally:
        consumer.close()
    return out


def read_mongo(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    with MongoClient(settings.mongo_uri, serverSelectionTimeoutMS=30_000) as client:
        db = client[settings.mongo_db]
        return {c: list(db[c].find()) for c in MONGO_COLLECTIONS}


def read_sources(settings: Settings, warehouse=None) -> SourceData:
    """What Kafka and MongoDB hold; with a connection to the `warehouse`, also the history of
    users changes the identity rules need (identity_oracle.read_user_changes)."""
    data = SourceData(messages=read_kafka(settings), documents=read_mongo(settings))
    if warehouse is not None:
        data.user_changes = read_user_changes(warehouse)
    return data


# -- typing rules (dbt/macros/json.sql and rejections.sql) -------------------------------------


def as_integer(value: Any) -> int | None:
    """`json_integer`: a JSON integer, or text that is an integer after trimming."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip(WHITESPACE)):
        return int(value.strip(WHITESPACE))
    return None


def as_timestamp(value: Any) -> datetime | None:
    """`json_timestamp`: ISO text (any offset; `t`, `z`, the basic format and a `,` before
    the fraction too, whitespace around it ignored: parse_utc_timestamp) or a BSON date, as
    naive UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip(WHITESPACE).upper())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def as_date(value: Any) -> date | None:
    """`json_date`: text that is a calendar date as %Y-%m-%d (whitespace around it ignored);
    anything else (a BSON date, a time after the date, 30 February) is no date."""
    if not isinstance(value, str):
        return None
    match = _DATE_TEXT.fullmatch(value.strip())
    if match is None:
        return None
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def age_in_years(dob: date | None, today: date) -> int | None:
    """Whole years from `dob` to `today` (the README's `age`): one less while this year's
    birthday is still to come, so a 29 February birthday comes on 1 March in other years; none
    for a dob after `today`."""
    if dob is None or dob > today:
        return None
    return today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def kafka_record(source: str, value: bytes | None) -> dict[str, Any] | None:
    """The typed record, or None when the pipeline must reject it (quarantine or staging)."""
    if value is None:
        return None
    try:
        record = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # nested too deeply: quarantined
        return None
    if not isinstance(record, dict):
        return None
    id_field = "event_id" if source == "weblogs" else "email_id"
    record_id = as_text(record.get(id_field))
    if record_id is None or not record_id.strip(WHITESPACE):
        return None
    customer_id = as_integer(record.get("user_id"))
    date = as_timestamp(record.get("date"))
    anonymous_id = None
    if source == "weblogs":
        # identity stitching: an anonymous visitor's event has an anonymous_id and no user_id
        anonymous_id = (as_text(record.get("anonymous_id")) or "").strip(WHITESPACE) or None
        if record.get("user_id") is None and anonymous_id is not None:
            customer_id = ANONYMOUS
    if customer_id is None or date is None:
        return None
    if customer_id is ANONYMOUS:
        customer_id = None
    typed = {"id": record_id.strip(WHITESPACE), "customer_id": customer_id, "date": date}
    if source == "weblogs":
        typed["anonymous_id"] = anonymous_id
        error = as_text(record.get("error_message"))
        typed["page"] = as_text(record.get("page"))
        typed["error_message"] = error.strip(WHITESPACE) or None if error is not None else None
        return typed
    if record.get("updated_at") is not None:
        updated_at = as_timestamp(record["updated_at"])
        if updated_at is None:
            return None  # updated_at is not a timestamp
    else:
        updated_at = None
    typed["updated_at"] = updated_at or date
    typed["opened"] = record.get("email_opened") is True
    typed["clicked"] = record.get("email_clicked") is True
    typed["unsubscribed"] = record.get("unsubscribed") is True
    recipient = as_text(record.get("recipient_email"))
    typed["recipient_email"] = (
        recipient.strip(WHITESPACE) or None if recipient is not None else None
    )
    return typed


def order_lines(document: dict[str, Any]) -> list[tuple[str | None, Decimal, int]] | None:
    """(product name, price, quantity) per line item, or None when the order is rejected."""
    items = document.get("items")
    if not isinstance(items, list):
        return None
    lines = []
    for item in items:
        if not isinstance(item, dict):
            return None
        price, quantity = item.get("price"), item.get("quantity")
        if isinstance(price, bool) or not isinstance(price, int | float):
            return None
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            return None
        if price < 0 or quantity <= 0 or abs(price) >= 1e22 or quantity >= 2**63:
            return None
        exact_price = Decimal(repr(price)).quantize(MICRO)
        if int(exact_price.scaleb(6)) * quantity > LARGEST_AMOUNT_MICROS:
            return None  # an amount (price x quantity) that does not fit the price's type
        lines.append((item.get("product_name"), exact_price, quantity))
    return lines


# The fields of a weblog the marts read: two records of one event_id that agree on these give
# the same marts whichever of them staging keeps.
WEBLOG_MART_FIELDS = ("customer_id", "anonymous_id", "date", "page", "error_message")
LOGIN_PAGE = "login_success.html"
ANONYMOUS = object()  # kafka_record's marker of a weblog without user_id but with anonymous_id


def stitch_anonymous(weblogs: list[dict[str, Any]]) -> dict[str, int]:
    """Identity stitching, as dbt/README.md states it (not as the SQL does it): the customer of
    each anonymous event (by event id): the one whose login (a login_success.html event with
    both ids) on the same anonymous_id is the latest at or before the event, else the first to
    log in with it; logins at the same instant ordered by event id. Events of a browser nobody
    logged in with are left out (unattributed)."""
    logins: dict[str, list[tuple[datetime, str, int]]] = defaultdict(list)
    for weblog in weblogs:
        if (
            weblog["customer_id"] is not None
            and weblog["anonymous_id"] is not None
            and weblog["page"] == LOGIN_PAGE
        ):
            logins[weblog["anonymous_id"]].append(
                (weblog["date"], weblog["id"], weblog["customer_id"])
            )
    owners: dict[str, int] = {}
    for weblog in weblogs:
        if weblog["customer_id"] is not None or weblog["anonymous_id"] not in logins:
            continue
        device_logins = sorted(logins[weblog["anonymous_id"]])
        before = [login for login in device_logins if login[0] <= weblog["date"]]
        owners[weblog["id"]] = (before[-1] if before else device_logins[0])[2]
    return owners


def guest_sale_owner(order: dict[str, Any], addresses: dict[str, set[int]]) -> int | None:
    """The customer of a guest in-store sale (no user_id, a customer_email): the one customer
    whose users email, trimmed and lower-cased, is the order's; None when none or two.

    By current addresses only; `expected_marts` matches, as dbt does, the address held at the
    time of the sale (identity_oracle.address_owner), which differs once a customer changes
    address after a guest sale by it."""
    address = (as_text(order.get("customer_email")) or "").strip(WHITESPACE).lower()
    holders = addresses.get(address, set()) if address else set()
    return next(iter(holders)) if len(holders) == 1 else None


def first_weblogs(messages: list[KafkaMessage]) -> tuple[list[dict[str, Any]], list[str]]:
    """The weblog staging keeps for each event_id, and the event_ids it cannot decide.

    stg_weblogs keeps the first valid record landed for an event_id, by (landing batch,
    partition, offset). The extractor reads every partition in offset order, exactly once, so
    within one partition a later offset never lands in an earlier batch: among records of one
    partition, the lowest offset is the one staging keeps, and the oracle takes it without
    looking at raw. Which of two partitions landed first depends on batch timing that the
    sources do not record; producers key weblogs by customer, so a repeated event (a retried
    send) stays in its partition. An event_id whose valid records lie in several partitions and
    differ in what the marts read is returned as undecidable (the soak reports it) rather than
    guessed.
    """
    by_id: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    for message in messages:
        weblog = kafka_record("weblogs", message.value)
        if weblog is not None:
            by_id.setdefault(weblog["id"], []).append((message.partition, message.offset, weblog))
    kept, undecidable = [], []
    for event_id, records in by_id.items():
        records.sort(key=lambda r: (r[0], r[1]))
        kept.append(records[0][2])
        if (
            len({p for p, _, _ in records}) > 1
            and len({tuple(r[f] for f in WEBLOG_MART_FIELDS) for _, _, r in records}) > 1
        ):
            undecidable.append(
                f"event_id {event_id} at "
                + ", ".join(f"{p}@{o}" for p, o, _ in records)
                + " (partition@offset) with different contents"
            )
    return kept, undecidable


# -- the marts --------------------------------------------------------------------------------


def expected_marts(data: SourceData) -> dict[str, set[tuple]]:
    """Every mart as the set of its rows (columns as in `MART_COLUMNS`)."""
    customers: set[int] = set()
    # Email consent statements per customer: (since, status, source); see customer_consent.yml.
    statements: dict[int, list[tuple]] = defaultdict(list)
    changes = data.user_changes
    if changes is None:
        changes = changes_from_documents(data.documents["users"])
    status_set_at = consent_set_at(changes)
    for user in data.documents["users"]:
        customer_id = as_integer(user.get("id"))
        if customer_id is not None:
            customers.add(customer_id)
            stated = (user.get("consent") or {}).get("email") or {}
            status = stated.get("status") if isinstance(stated, dict) else None
            status = status.strip(WHITESPACE).lower() if isinstance(status, str) else None
            if status in ("granted", "withdrawn"):
                since = as_timestamp(stated.get("at")) or status_set_at.get(str(user.get("_id")))
                statements[customer_id].append((since, status, "profile"))

    stats: dict[tuple[int, str], list] = defaultdict(lambda: [0, 0, Decimal(0)])
    popular: dict[tuple[int, str], list] = {}
    activity: dict[tuple[int, str], datetime] = {}
    orders = new_orders_index()  # per customer, for customer_traits (traits_oracle.py)
    not_sold = not_sold_statuses()

    def event(customer_id: int, name: str, at: datetime | None) -> None:
        if at is None:
            return
        key = (customer_id, name)
        if key not in activity or activity[key] < at:
            activity[key] = at

    # Who held each address when (identity_oracle.py): guest sales match it at their time.
    periods = address_periods(changes)
    guest_sales: list[tuple[int, str, datetime]] = []

    for collection, channel in (("online_orders", "Online"), ("instore_orders", "Instore")):
        for order in data.documents[collection]:
            customer_id = as_integer(order.get("user_id"))
            ordered_at = as_timestamp(order.get("date"))
            guest = channel == "Instore" and order.get("user_id") is None
            if guest and ordered_at is not None:
                customer_id = address_owner(order.get("customer_email"), ordered_at, periods)
            lines = order_lines(order)
            if customer_id not in customers or ordered_at is None or lines is None:
                continue
            if guest:
                guest_sales.append(
                    (customer_id, normalized_email(order["customer_email"]), ordered_at)
                )
            categories = [item.get("category") for item in order["items"]]
            if is_sale(channel, order.get("status"), not_sold):
                orders[customer_id].add(
                    channel,
                    ordered_at,
                    [
                        (as_text(category), price * quantity)
                        for category, (_, price, quantity) in zip(categories, lines, strict=True)
                    ],
                )
            row = stats[(customer_id, channel)]
            row[0] += 1
            event(customer_id, f"{channel} Order", ordered_at)
            for name, price, quantity in lines:
                row[1] += 1
                row[2] += price * quantity
                if name is None:
                    continue
                item = popular.setdefault((customer_id, name.upper()), [0, ordered_at])
                item[0] += 1
                item[1] = max(item[1], ordered_at)

    # Weblogs: one event per event_id, the record stg_weblogs keeps (see `first_weblogs`).
    errors: dict[tuple[int, str, str | None], list] = {}
    weblogs = first_weblogs(data.messages["weblogs"])[0]
    stitched = stitch_anonymous(weblogs)
    logins: list[tuple[int, str, datetime]] = []
    stitched_events: list[tuple[int, str, datetime]] = []
    for weblog in weblogs:
        customer_id = weblog["customer_id"]
        device = weblog["anonymous_id"]
        if customer_id is None:
            customer_id = stitched.get(weblog["id"])
            if customer_id is not None:
                stitched_events.append((customer_id, device, weblog["date"]))
        elif device is not None and weblog["page"] == LOGIN_PAGE:
            logins.append((customer_id, device, weblog["date"]))
        if customer_id not in customers:
            continue
        event(customer_id, "Website Visit", weblog["date"])
        if weblog["page"] == "login_success.html":
            event(customer_id, "Website Login", weblog["date"])
        if weblog["error_message"] is not None:
            key = (customer_id, weblog["error_message"], weblog["page"])
            error = errors.setdefault(key, [weblog["date"], 0])
            error[0] = max(error[0], weblog["date"])
            error[1] += 1

    # Emails: one per email_id, merging all its records.
    emails: dict[str, dict[str, Any]] = {}
    for message in data.messages["marketing_emails"]:
        record = kafka_record("marketing_emails", message.value)
        if record is None:
            continue
        email = emails.setdefault(
            record["id"], {"customer_id": record["customer_id"], "sent": record["date"],
                           "opened": None, "clicked": None, "recipient": None,
                           "unsubscribes": []},
        )  # fmt: skip
        email["customer_id"] = min(email["customer_id"], record["customer_id"])
        email["sent"] = min(email["sent"], record["date"])
        if record["recipient_email"] is not None:  # stg_marketing_emails: the least address
            email["recipient"] = min(email["recipient"] or record["recipient_email"],
                                     record["recipient_email"])  # fmt: skip
        for flag in ("opened", "clicked"):
            if record[flag] and (email[flag] is None or record["updated_at"] < email[flag]):
                email[flag] = record["updated_at"]
        if record["unsubscribed"]:
            email["unsubscribes"].append(record["updated_at"])
    for email in emails.values():
        if email["customer_id"] in customers:
            event(email["customer_id"], "Email Sent", email["sent"])
            event(email["customer_id"], "Email Opened", email["opened"])
            event(email["customer_id"], "Email Clicked", email["clicked"])
            # Every unsubscribe record is a statement (the link followed again after a grant).
            statements[email["customer_id"]].extend(
                (at, "withdrawn", "unsubscribe") for at in email["unsubscribes"]
            )

    # The latest statement; one without a time is the oldest; a withdrawal wins a tie.
    consent = {}
    for customer_id in customers:
        if statements[customer_id]:
            since, status, source = max(
                statements[customer_id],
                key=lambda s: (s[0] is not None, s[0] or datetime.min, s[1] == "withdrawn",
                               s[2] == "profile"),
            )  # fmt: skip
            consent[customer_id] = (customer_id, status, since, source)
        else:
            consent[customer_id] = (customer_id, "unknown", None, None)

    today = datetime.now(UTC).date()  # the reading day of the views (age, traits, audiences)
    traits = expected_traits(customers, orders, today)
    users = {as_integer(u.get("id")): u for u in data.documents["users"]}
    recipients = [
        (e["customer_id"], normalized_email(e["recipient"]), e["sent"])
        for e in emails.values() if e["recipient"] is not None
    ]  # fmt: skip
    identities = expected_identities(
        {c: users[c] for c in customers}, changes, guest_sales, recipients, logins,
        stitched_events,
    )  # fmt: skip
    profiles = expected_profiles(
        users, customers, stats, activity, errors, traits, consent, popular, today
    )
    return {
        "customer_purchase_stats": {
            (
                c,
                channel,
                orders,
                items,
                (Decimal(items) / Decimal(orders)).quantize(CENT, ROUND_HALF_UP),
                amount.quantize(MICRO),
            )
            for (c, channel), (orders, items, amount) in stats.items()
        },  # fmt: skip
        "customer_popular_items": {(c, p, n, at) for (c, p), (n, at) in popular.items()},
        "customer_activity": {(c, e, at) for (c, e), at in activity.items()},
        "customer_recent_errors": {
            (c, message, page, at, n) for (c, message, page), (at, n) in errors.items()
        },
        "customer_details": {tuple(p[c] for c in DETAILS_COLUMNS) for p in profiles},
        "customer_360": {tuple(p.get(c) for c in CUSTOMER_360_COLUMNS) for p in profiles},
        "customer_traits": traits,
        "customer_consent": set(consent.values()),
        "customer_identities": identities,
        "customer_audiences": expected_members(profiles, today),
    }


def expected_profiles(
    users, customers, stats, activity, errors, traits, consent, popular, today: date
) -> list[dict]:
    """customer_360's rows as the oracle expects them on the reading day `today` (every column
    but as_of: CUSTOMER_360_COLUMNS), from the pieces `expected_marts` computed."""
    latest_errors: dict[int, tuple] = {}
    for (customer_id, message, page), (at, count) in errors.items():
        # Latest first, then most events, then message and page A-Z (customer_360_base).
        rank = (-at.timestamp(), -count, message, page is None, page or "")
        if customer_id not in latest_errors or rank < latest_errors[customer_id][0]:
            latest_errors[customer_id] = (rank, message, page, at)
    favourites = favourite_products(popular)
    traits_by_customer = {row[0]: row for row in traits}
    profiles = []
    for customer_id in customers:
        user = users[customer_id]
        online = stats.get((customer_id, "Online"), [0, 0, Decimal(0)])
        instore = stats.get((customer_id, "Instore"), [0, 0, Decimal(0)])
        profile = {
            "customer_id": customer_id,
            **{f: as_text(user.get(f)) for f in ("first_name", "last_name", "email", "gender")},
            "dob": as_date(user.get("dob")),
            "age": age_in_years(as_date(user.get("dob")), today),
            "city": as_text((user.get("address") or {}).get("city"))
            if isinstance(user.get("address"), dict) else None,
            "country": as_text((user.get("address") or {}).get("country"))
            if isinstance(user.get("address"), dict) else None,
            "online_orders": online[0], "online_items_purchased": online[1],
            "online_amount_spent": online[2],
            "instore_orders": instore[0], "instore_items_purchased": instore[1],
            "instore_amount_spent": instore[2],
            "total_orders": online[0] + instore[0],
            "total_items_purchased": online[1] + instore[1],
            "total_amount_spent": online[2] + instore[2],
        }  # fmt: skip
        for column, event in (
            ("last_instore_order_at", "Instore Order"), ("last_online_order_at", "Online Order"),
            ("last_email_sent_at", "Email Sent"), ("last_email_opened_at", "Email Opened"),
            ("last_email_clicked_at", "Email Clicked"),
            ("last_website_visit_at", "Website Visit"),
            ("last_website_login_at", "Website Login"),
        ):  # fmt: skip
            profile[column] = activity.get((customer_id, event))
        if customer_id in favourites:
            profile["favourite_product"], profile["favourite_product_purchases"] = favourites[
                customer_id
            ]
        if customer_id in latest_errors:
            _, message, page, at = latest_errors[customer_id]
            profile.update(latest_error_message=message, latest_error_page=page,
                           latest_error_at=at)  # fmt: skip
        profile.update(zip(TRAITS_COLUMNS, traits_by_customer[customer_id], strict=True))
        profile["email_consent"] = consent[customer_id][1]
        profile["email_consent_since"] = consent[customer_id][2]
        profiles.append(profile)
    return profiles


def favourite_products(popular: dict[tuple[int, str], list]) -> dict[int, tuple[str, int]]:
    """Each customer's favourite product and its purchases, from customer_popular_items' rows
    ((customer, product) -> [purchases, last purchased at]): most purchases, then latest
    last_purchased_at, then product name A-Z (dbt/README.md)."""
    best: dict[int, tuple] = {}
    for (customer_id, product), (purchases, last_at) in popular.items():
        rank = (-purchases, -last_at.timestamp(), product)
        if customer_id not in best or rank < best[customer_id][0]:
            best[customer_id] = (rank, product, purchases)
    return {customer_id: (product, n) for customer_id, (_, product, n) in best.items()}


def marts_rows(con, schema: str = "marts.") -> dict[str, Counter]:
    """The marts read from the warehouse (or, with `schema=""`, a serving copy) on `con`, each
    as a multiset of rows: a copy of a row counts, where a set would hide it."""
    out = {}
    for mart, columns in MART_COLUMNS.items():
        rows = con.execute(f"select {', '.join(columns)} from {schema}{mart}").fetchall()
        out[mart] = Counter(_normalize(row) for row in rows)
    return out


def _normalize(row: tuple) -> tuple:
    return tuple(
        v.quantize(MICRO) if isinstance(v, Decimal) and v.as_tuple().exponent < -2 else v
        for v in row
    )
