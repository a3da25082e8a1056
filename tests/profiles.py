"""The profile the API should serve for a customer, read straight from the marts.

An independent reading for tests: plain SQL on the `marts` schema, in the API's JSON shape (values
converted as the API converts them), so a test can assert that what the API serves is what dbt
built.
"""

from __future__ import annotations

from typing import Any

from customer360.serving.api import LIST_LIMIT, json_value
from customer360.serving.profile_traits import TRAIT_COLUMNS


def _dicts(con, sql: str, customer_id: int) -> list[dict[str, Any]]:
    cursor = con.execute(sql, [customer_id])
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return [{n: json_value(v) for n, v in zip(names, row, strict=True)} for row in rows]


def profile_from_marts(con, customer_id: int) -> dict[str, Any] | None:
    """The marts' answer for one customer (None if the customer does not exist)."""
    rows = _dicts(con, "select * from marts.customer_360 where customer_id = ?", customer_id)
    if not rows:
        return None
    details = _dicts(
        con, "select * from marts.customer_details where customer_id = ?", customer_id
    )[0]
    return {
        "customer_360": rows[0],
        "details": details,
        "traits": _dicts(
            con,
            f"select {', '.join(TRAIT_COLUMNS)} from marts.customer_traits where customer_id = ?",
            customer_id,
        )[0],
        "purchase_stats": _dicts(
            con,
            "select channel, number_of_orders, number_of_items_purchased, items_per_order,"
            " amount_spent from marts.customer_purchase_stats where customer_id = ?"
            " order by channel = 'Instore', channel",
            customer_id,
        ),
        "favourite_products": _dicts(
            con,
            "select product_name, purchases, last_purchased_at"
            " from marts.customer_popular_items where customer_id = ?"
            f" order by purchases desc, last_purchased_at desc, product_name limit {LIST_LIMIT}",
            customer_id,
        ),
        "recent_errors": _dicts(
            con,
            "select error_message, page, last_at, occurrences"
            " from marts.customer_recent_errors where customer_id = ? order by last_at desc,"
            f" occurrences desc, error_message, page nulls last limit {LIST_LIMIT}",
            customer_id,
        ),
        "activity": _dicts(
            con,
            "select event, last_at from marts.customer_activity where customer_id = ?"
            " order by last_at desc, event desc",
            customer_id,
        ),
        "identities": _dicts(
            con,
            "select identifier_type, identifier, first_seen_at, last_seen_at"
            " from marts.customer_identities where customer_id = ?"
            " order by identifier_type, identifier",
            customer_id,
        ),
        "propensity": _propensity(con, customer_id),
    }


def _propensity(con, customer_id: int) -> dict[str, Any] | None:
    """customer_propensity's row in the API's shape (None: no model trained yet)."""
    rows = _dicts(
        con,
        "select propensity_score as score, model_version, scored_as_of,"
        " [r for r in [reason_1, reason_2, reason_3] if r is not null] as reasons"
        " from marts.customer_propensity where customer_id = ?",
        customer_id,
    )
    return rows[0] if rows else None


def assert_profile_matches_marts(api_profile: dict[str, Any], con) -> None:
    """Every section of an API profile equals the marts' answer for that customer."""
    expected = profile_from_marts(con, api_profile["customer_id"])
    assert expected is not None, f"customer {api_profile['customer_id']} is not in the marts"
    for section, value in expected.items():
        got = api_profile[section]
        if section == "details":  # the API shows some of customer_details' columns
            value = {k: value.get(k, "<not in customer_details>") for k in got}
        assert got == value, f"customer {api_profile['customer_id']}: {section} differs"
