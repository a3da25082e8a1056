"""Which texts name a customer id: the API's path and its search read them by one rule."""

from __future__ import annotations

import pytest

from customer360.serving.api import MAX_CUSTOMER_ID, MIN_CUSTOMER_ID, customer_id_from_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", 7),
        ("07", 7),
        ("0", 0),
        (str(MAX_CUSTOMER_ID), MAX_CUSTOMER_ID),
        (str(MAX_CUSTOMER_ID + 1), None),
        ("1" * 20, None),
        ("", None),
        ("+7", None),
        ("-7", -7),  # staging reads "-7" as a customer id: its profile must be reachable
        (str(MIN_CUSTOMER_ID), MIN_CUSTOMER_ID),
        (str(MIN_CUSTOMER_ID - 1), None),
        ("-", None),
        ("--7", None),
        ("- 7", None),
        (" 7", None),
        ("7 ", None),
        ("7\n", None),
        ("7_0", None),
        ("7.0", None),
        ("1e3", None),
        ("0x7", None),
        ("²", None),
        ("٣", None),  # an Arabic-Indic 3: a digit to str.isdigit() and int()
        ("７", None),  # a fullwidth 7: int() reads it as 7
    ],
)
def test_a_customer_id_is_ascii_digits_after_an_optional_minus(
    text: str, expected: int | None
) -> None:
    assert customer_id_from_text(text) == expected
