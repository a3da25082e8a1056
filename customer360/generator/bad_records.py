"""Records that break the contract on purpose, so the pipeline's quarantine gets exercised.

Each kind is built from a good record so it looks like what a buggy producer would send.
"""

from __future__ import annotations

import random
from typing import Any

from customer360.generator.outputs import to_json

# What `stream` rotates through, in this order.
BAD_KINDS = (
    "invalid_json",
    "missing_user_id",
    "wrong_user_id_type",
    "wrong_date_type",
    "unknown_customer",
)
# An unknown customer's id is at least this far above the largest real id.
UNKNOWN_CUSTOMER_OFFSET = 900_000_000

_NOT_DATES = ("not a date", "2026-13-45T25:61:00+00:00", "yesterday", "", 1764262847)
_WRONG_USER_IDS = ("abc", "12a", "", "null", "user-42")


def invalid_json(rng: random.Random, good: dict[str, Any]) -> bytes:
    """Text that is not JSON: a record cut short, a Python repr, or plain text."""
    text = to_json(good)
    variant = rng.randrange(4)
    if variant == 0:
        return text[: max(1, len(text) // 2)]  # truncated mid-record
    if variant == 1:
        return repr(good).encode()  # single quotes, None, True
    if variant == 2:
        return b"user_id=" + str(good.get("user_id")).encode() + b"&page=home"
    return text.replace(b'"', b"", 2)  # an unquoted key


def missing_user_id(good: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in good.items() if key != "user_id"}


def wrong_user_id_type(rng: random.Random, good: dict[str, Any]) -> dict[str, Any]:
    return {**good, "user_id": rng.choice(_WRONG_USER_IDS)}


def wrong_date_type(rng: random.Random, good: dict[str, Any]) -> dict[str, Any]:
    return {**good, "date": rng.choice(_NOT_DATES)}


def unknown_customer_id(rng: random.Random, largest_id: int) -> int:
    """A customer id that no `users` document has (and none will for a long while)."""
    return largest_id + UNKNOWN_CUSTOMER_OFFSET + rng.randrange(1_000_000)
