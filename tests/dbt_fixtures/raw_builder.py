"""Raw landing rows exactly as the extractors write them, for dbt tests.

`RawLanding` keeps a clock and the positions (batch ids, Mongo cluster times, Kafka offsets) and
writes into the `raw` tables of a DuckDB warehouse created with `RAW_SCHEMA_DDL`:
- Mongo rows: operation, document_key (ObjectId hex), cluster_time ((seconds << 32) + increment),
  cluster_at, and the document as relaxed extended JSON (`bson.json_util`, like the extractor);
- Kafka rows: topic, partition, offset, key, timestamp and the message value as text.
Each `land()` call gives every table that has pending rows its own new batch id, as one
extractor micro-batch per source would.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from bson import ObjectId
from bson.json_util import RELAXED_JSON_OPTIONS, dumps

from extractors.landing_schema import RAW_SCHEMA_DDL

MONGO_TABLES = ("users", "online_orders", "instore_orders")
KAFKA_TABLES = ("weblogs", "marketing_emails")
UTC = dt.UTC


def utc(text: str) -> dt.datetime:
    """'2026-05-01T10:00:00' (or with fractions) as an aware UTC datetime."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def iso(moment: dt.datetime) -> str:
    """Kafka payload time: '2026-11-27T18:40:47.123+00:00'."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def object_id(number: int) -> str:
    """A stable ObjectId hex for test document `number`."""
    return f"{number:024x}"


@dataclass
class RawLanding:
    """Lands into every warehouse file in `warehouses` (copies of the same raw data)."""

    warehouses: list[Path]
    now: dt.datetime = field(default_factory=lambda: utc("2026-05-01T08:00:00"))
    next_batch_id: int = 1
    increment: int = 0
    partitions: int = 3
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    pending: dict[str, list[tuple]] = field(default_factory=dict)
    stream_start: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for warehouse in self.warehouses:
            with duckdb.connect(str(warehouse)) as con:
                con.execute(RAW_SCHEMA_DDL)

    # -- clock -------------------------------------------------------------------------------
    def tick(self, seconds: float = 1.0) -> dt.datetime:
        self.now = self.now + dt.timedelta(seconds=seconds)
        return self.now

    def _cluster_time(self) -> tuple[int, dt.datetime]:
        self.increment += 1
        seconds = int(self.now.timestamp())
        return (seconds << 32) + self.increment, dt.datetime.fromtimestamp(seconds, UTC)

    # -- Mongo -------------------------------------------------------------------------------
    def mongo(self, table: str, operation: str, key: str, document: dict | None) -> None:
        """A change event; snapshot rows carry the cluster time their stream opened at."""
        assert table in MONGO_TABLES
        if operation == "snapshot":
            if table not in self.stream_start:
                self.stream_start[table] = self._cluster_time()[0]
            cluster_time = self.stream_start[table]
            cluster_at = dt.datetime.fromtimestamp(cluster_time >> 32, UTC)
        else:
            cluster_time, cluster_at = self._cluster_time()
        text = None
        if document is not None:
            body = {"_id": ObjectId(key), **document}
            text = dumps(body, json_options=RELAXED_JSON_OPTIONS)
        self.pending.setdefault(table, []).append(
            (operation, key, cluster_time, cluster_at.replace(tzinfo=None), text)
        )

    def mongo_raw(self, table: str, operation: str, key: str, text: str | None) -> None:
        """A change event whose document text is given as is (for bad records)."""
        cluster_time, cluster_at = self._cluster_time()
        self.pending.setdefault(table, []).append(
            (operation, key, cluster_time, cluster_at.replace(tzinfo=None), text)
        )

    def user(self, operation: str, number: int, customer_id: int, **fields: Any) -> str:
        key = object_id(number)
        document = None
        if operation != "delete":
            document = {
                "id": customer_id,
                "first_name": fields.get("first_name", f"First{customer_id}"),
                "last_name": fields.get("last_name", f"Last{customer_id}"),
                "email": fields.get("email", f"c{customer_id}@example.com"),
                "gender": fields.get("gender", "F"),
                "dob": fields.get("dob", "1990-06-15"),
                "address": {
                    "street": fields.get("street", "1 Main St"),
                    "city": fields.get("city", "Paris"),
                    "postcode": fields.get("postcode", "75001"),
                    "country": fields.get("country", "France"),
                },
                "created_at": fields.get("created_at", utc("2025-01-01T00:00:00")),
                "updated_at": self.now,
            }
            if "consent" in fields:  # e.g. {"email": {"status": "granted", "at": ...}}
                document["consent"] = fields["consent"]
        self.mongo("users", operation, key, document)
        return key

    def order(
        self,
        channel: str,
        operation: str,
        number: int,
        customer_id: Any = None,
        date: dt.datetime | None = None,
        items: list[tuple[str, str, Any, Any]] | None = None,
        customer_email: str | None = None,
        status: str | None = "delivered",
    ) -> str:
        """items: (product_name, category, price, quantity). A guest (till) sale has
        `customer_email` and no customer_id (the document then has no `user_id`). `status`:
        an online order's (None: the document has none)."""
        table = "online_orders" if channel == "Online" else "instore_orders"
        key = object_id(number)
        document = None
        if operation != "delete":
            document = {
                **({} if customer_id is None and customer_email else {"user_id": customer_id}),
                **({"customer_email": customer_email} if customer_email is not None else {}),
                "date": date or self.now,
                "items": [
                    {
                        "product_id": f"P-{name}",
                        "product_name": name,
                        "category": category,
                        "price": price,
                        "quantity": quantity,
                    }
                    for name, category, price, quantity in (items or [])
                ],
            }
            if channel == "Online":
                document["delivery_address"] = {"city": "Lyon", "country": "France"}
                if status is not None:
                    document["status"] = status
            else:
                document["store"] = {"store_id": "S1", "name": "Central", "city": "Paris"}
        self.mongo(table, operation, key, document)
        return key

    # -- Kafka -------------------------------------------------------------------------------
    def kafka(self, table: str, value: dict | str, key: str | None = None, partition: int = 0):
        assert table in KAFKA_TABLES
        offset = self.offsets.get((table, partition), 0)
        self.offsets[(table, partition)] = offset + 1
        text = value if isinstance(value, str) else json.dumps(value)
        self.pending.setdefault(table, []).append(
            (table, partition, offset, key, self.now.replace(tzinfo=None), text)
        )

    def weblog(
        self,
        event_id: str,
        customer_id: Any,
        date: dt.datetime | str | None = None,
        page: str = "home.html",
        action: str = "view",
        error_message: str | None = None,
        partition: int = 0,
        anonymous_id: str | None = None,
    ) -> None:
        """An anonymous visitor's event: customer_id None and an anonymous_id (no user_id key)."""
        when = date if isinstance(date, str) else iso(date or self.now)
        value = {
            "event_id": event_id,
            **({} if customer_id is None else {"user_id": customer_id}),
            **({"anonymous_id": anonymous_id} if anonymous_id is not None else {}),
            "date": when,
            "session_id": f"s-{customer_id}",
            "page": page,
            "action": action,
            "error_message": error_message,
        }
        self.kafka("weblogs", value, key=str(customer_id), partition=partition)

    def email(
        self,
        email_id: str,
        customer_id: Any,
        sent: dt.datetime | str,
        opened: bool = False,
        clicked: bool = False,
        updated_at: dt.datetime | None = None,
        campaign: str = "spring",
        partition: int = 0,
        recipient_email: str | None = None,
        unsubscribed: bool | None = None,
    ) -> None:
        value = {
            **({"recipient_email": recipient_email} if recipient_email is not None else {}),
            "email_id": email_id,
            "user_id": customer_id,
            "date": sent if isinstance(sent, str) else iso(sent),
            "campaign": campaign,
            "items": ["Red Shirt"],
            "email_opened": opened,
            "email_clicked": clicked,
            "updated_at": iso(updated_at or (sent if isinstance(sent, dt.datetime) else self.now)),
        }
        if unsubscribed is not None:
            value["unsubscribed"] = unsubscribed
        self.kafka("marketing_emails", value, key=email_id, partition=partition)

    # -- landing -----------------------------------------------------------------------------
    def land(self) -> list[int]:
        """Write the pending rows: one batch per table, batch ids increasing. Returns them."""
        batch_ids = []
        landed_at = self.tick(0.5).replace(tzinfo=None)
        cons = [duckdb.connect(str(warehouse)) for warehouse in self.warehouses]
        try:
            for con in cons:
                con.begin()
            for table in MONGO_TABLES + KAFKA_TABLES:
                batch_id = self._land_table(cons, table, landed_at)
                if batch_id is not None:
                    batch_ids.append(batch_id)
            for con in cons:
                con.commit()
        finally:
            for con in cons:
                con.close()
        return batch_ids

    def _land_table(
        self, cons: list[duckdb.DuckDBPyConnection], table: str, landed_at: dt.datetime
    ) -> int | None:
        rows = self.pending.pop(table, [])
        if not rows:
            return None
        batch_id = self.next_batch_id
        self.next_batch_id += 1
        for con in cons:
            if table in MONGO_TABLES:
                con.executemany(
                    f"insert into raw.{table} (batch_id, landed_at, operation, document_key,"
                    " cluster_time, cluster_at, document) values (?, ?, ?, ?, ?, ?, ?)",
                    [(batch_id, landed_at, *row) for row in rows],
                )
            else:
                con.executemany(
                    f'insert into raw.{table} (batch_id, landed_at, topic, "partition", "offset",'
                    ' "key", "timestamp", "value") values (?, ?, ?, ?, ?, ?, ?, ?)',
                    [(batch_id, landed_at, *row) for row in rows],
                )
        return batch_id
