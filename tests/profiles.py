"""The profile the API should serve for a customer, read straight from the marts.

An independent reading for tests: plain SQL on the `marts` schema, in the API's JSON shape (values
converted as the API converts them), so a test can assert that what the API serves is what dbt
built.
"""

from __future__ import annotations

from typing import Any

from customer360.serving.api import LIST_LIMIT, json_value
from customer360.serving.profile_traits import TRAIT_COLUMNS

# Each section: the marts' SQL for a set of customers (the list bound to $1), the order of its
# rows within a customer, and how many the profile shows (None: all).
SECTIONS = {
    "customer_360": ("select * from marts.customer_360", "", None),
    "details": ("select * from marts.customer_details", "", None),
    "traits": (
        f"select customer_id, {', '.join(TRAIT_COLUMNS)} from marts.customer_traits",
        "",
        None,
    ),
    "purchase_stats": (
        "select customer_id, channel, number_of_orders, number_of_items_purchased,"
        " items_per_order, amount_spent from marts.customer_purchase_stats",
        "channel = 'Instore', channel",
        None,
    ),
    "favourite_products": (
        "select customer_id, product_name, purchases, last_purchased_at"
        " from marts.customer_popular_items",
        "purchases desc, last_purchased_at desc, product_name",
        LIST_LIMIT,
    ),
    "recent_errors": (
        "select customer_id, error_message, page, last_at, occurrences"
        " from marts.customer_recent_errors",
        "last_at desc, occurrences desc, error_message, page nulls last",
        LIST_LIMIT,
    ),
    "activity": (
        "select customer_id, event, last_at from marts.customer_activity",
        "last_at desc, event desc",
        None,
    ),
    "identities": (
        "select customer_id, identifier_type, identifier, first_seen_at, last_seen_at"
        " from marts.customer_identities",
        "identifier_type, identifier",
        None,
    ),
    "propensity": (
        "select customer_id, propensity_score as score, model_version, scored_as_of,"
        " [r for r in [reason_1, reason_2, reason_3] if r is not null] as reasons"
        " from marts.customer_propensity",
        "",
        None,
    ),
}
# Sections holding one row (or none) per customer, shown as that row, not a list.
SINGLE_ROW = {"customer_360", "details", "traits", "propensity"}


def profiles_from_marts(con, customer_ids) -> dict[int, dict[str, Any]]:
    """The marts' answer for each of `customer_ids` that exists: one query per mart for them
    all (a customer at a time, ten queries each, made the 300-profile test slow)."""
    ids = sorted(set(customer_ids))
    sections: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for section, (select, order, limit) in SECTIONS.items():
        order_by = f"customer_id, {order}" if order else "customer_id"
        cursor = con.execute(
            f"{select} where list_contains($1, customer_id) order by {order_by}", [ids]
        )
        names = [d[0] for d in cursor.description]
        by_customer: dict[int, list[dict[str, Any]]] = {}
        for row in cursor.fetchall():
            values = {n: json_value(v) for n, v in zip(names, row, strict=True)}
            if section not in ("customer_360", "details"):  # rows of a list, or traits
                values.pop("customer_id")
            by_customer.setdefault(row[0], []).append(values)
        sections[section] = {
            customer: rows[:limit] if limit else rows for customer, rows in by_customer.items()
        }
    profiles = {}
    for customer in sections["customer_360"]:
        profile = {}
        for section, by_customer in sections.items():
            rows = by_customer.get(customer, [])
            profile[section] = (rows[0] if rows else None) if section in SINGLE_ROW else rows
        profiles[customer] = profile
    return profiles


def profile_from_marts(con, customer_id: int) -> dict[str, Any] | None:
    """The marts' answer for one customer (None if the customer does not exist)."""
    return profiles_from_marts(con, [customer_id]).get(customer_id)


def assert_profile_matches_marts(
    api_profile: dict[str, Any], con=None, expected: dict[str, Any] | None = None
) -> None:
    """Every section of an API profile equals the marts' answer for that customer (`expected`,
    from `profiles_from_marts`, or read now on `con`)."""
    if expected is None:
        expected = profile_from_marts(con, api_profile["customer_id"])
    assert expected is not None, f"customer {api_profile['customer_id']} is not in the marts"
    for section, value in expected.items():
        got = api_profile[section]
        if section == "details":  # the API shows some of customer_details' columns
            value = {k: value.get(k, "<not in customer_details>") for k in got}
        assert got == value, f"customer {api_profile['customer_id']}: {section} differs"
