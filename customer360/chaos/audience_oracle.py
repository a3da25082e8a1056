"""Audience membership as the chaos oracle expects it.

The audiences are those of the one reviewed file, dbt/models/marts/audience_definitions.yml
(read here as YAML, not through dbt). Each condition is SQL over customer_360's columns and
`today`, so the oracle evaluates it in an in-memory DuckDB over a `customer_360` table it fills
with its own expected rows (computed in plain Python from the sources, oracle.py and
traits_oracle.py), never over anything dbt built. An audience for the email channel also needs
granted email consent (dbt/macros/audiences.sql).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import yaml

DEFINITIONS = (
    Path(__file__).resolve().parents[2] / "dbt" / "models" / "marts" / "audience_definitions.yml"
)
AUDIENCE_COLUMNS = ("audience", "customer_id")

# customer_360's columns the oracle computes, with their DuckDB types.
PROFILE_COLUMNS = {
    "customer_id": "bigint",
    "first_name": "varchar",
    "last_name": "varchar",
    "email": "varchar",
    "gender": "varchar",
    "dob": "date",
    "age": "bigint",
    "city": "varchar",
    "country": "varchar",
    "online_orders": "bigint",
    "online_items_purchased": "bigint",
    "online_amount_spent": "decimal(38, 6)",
    "instore_orders": "bigint",
    "instore_items_purchased": "bigint",
    "instore_amount_spent": "decimal(38, 6)",
    "total_orders": "bigint",
    "total_items_purchased": "bigint",
    "total_amount_spent": "decimal(38, 6)",
    "favourite_product": "varchar",
    "favourite_product_purchases": "bigint",
    "last_instore_order_at": "timestamp",
    "last_online_order_at": "timestamp",
    "last_email_sent_at": "timestamp",
    "last_email_opened_at": "timestamp",
    "last_email_clicked_at": "timestamp",
    "last_website_visit_at": "timestamp",
    "last_website_login_at": "timestamp",
    "latest_error_message": "varchar",
    "latest_error_page": "varchar",
    "latest_error_at": "timestamp",
    "lifetime_value": "decimal(38, 6)",
    "average_order_value": "decimal(38, 2)",
    "orders_last_30_days": "bigint",
    "orders_last_90_days": "bigint",
    "orders_last_365_days": "bigint",
    "days_since_last_order": "bigint",
    "first_order_date": "date",
    "preferred_channel": "varchar",
    "preferred_category": "varchar",
    "recency_score": "integer",
    "frequency_score": "integer",
    "monetary_score": "integer",
    "rfm_segment": "varchar",
    "lifecycle_stage": "varchar",
    "email_consent": "varchar",
    "email_consent_since": "timestamp",
}


def audience_definitions(path: Path = DEFINITIONS) -> list[dict[str, Any]]:
    """The audiences of the reviewed file: name, description, channel, condition."""
    document = yaml.safe_load(path.read_text())
    model = next(m for m in document["models"] if m["name"] == "audience_definitions")
    return list(((model.get("config") or {}).get("meta") or {}).get("audiences") or [])


def expected_members(
    profiles: list[dict[str, Any]], today: date, definitions: list[dict[str, Any]] | None = None
) -> set[tuple[str, int]]:
    """(audience, customer_id) of every member: the customers whose profile meets the
    audience's condition on `today` (and, for the email channel, with granted email consent).

    `profiles`: one dict per customer with (some of) `PROFILE_COLUMNS`; missing ones are null.
    """
    import duckdb

    definitions = audience_definitions() if definitions is None else definitions
    if not definitions:
        return set()
    con = duckdb.connect()
    try:
        columns = ", ".join(f"{name} {kind}" for name, kind in PROFILE_COLUMNS.items())
        con.execute(f"create table customer_360 ({columns})")
        if profiles:
            con.executemany(
                f"insert into customer_360 values ({', '.join('?' for _ in PROFILE_COLUMNS)})",
                [[p.get(name) for name in PROFILE_COLUMNS] for p in profiles],
            )
        members = set()
        for audience in definitions:
            consent = " and email_consent = 'granted'" if audience["channel"] == "email" else ""
            rows = con.execute(
                f"""
                select customer_id
                from (select *, ?::date as today from customer_360) as profile
                where coalesce(({audience["condition"].strip()}), false){consent}
                """,
                [today],
            ).fetchall()
            members |= {(audience["name"], customer_id) for (customer_id,) in rows}
        return members
    finally:
        con.close()
