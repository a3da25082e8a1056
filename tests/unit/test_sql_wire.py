"""The SQL endpoint's value encoding, checked against PostgreSQL's own definition of the bytes."""

from __future__ import annotations

import struct
from decimal import Decimal, localcontext

import pytest

from customer360.serving.sql_endpoint import wire

NUMERIC_POS, NUMERIC_NEG, NUMERIC_NAN = 0x0000, 0x4000, 0xC000


def decode_numeric(data: bytes) -> Decimal:
    """PostgreSQL's binary NUMERIC (numeric_send in src/backend/utils/adt/numeric.c), decoded
    here without wire.py: ndigits, weight, sign, dscale, then ndigits base-10000 digits, the
    first worth 10000^weight."""
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", data)
    digits = struct.unpack_from(f"!{ndigits}H", data, 8)
    assert len(data) == 8 + 2 * ndigits
    assert all(0 <= d < 10000 for d in digits)
    assert sign in (NUMERIC_POS, NUMERIC_NEG, NUMERIC_NAN)
    if sign == NUMERIC_NAN:
        return Decimal("NaN")
    assert not digits or (digits[0] != 0 and digits[-1] != 0), "digits must be stripped"
    with localcontext(prec=1000):  # exact: decimal(38, s) and beyond
        magnitude = sum(
            (Decimal(d) * Decimal(10000) ** (weight - i) for i, d in enumerate(digits)),
            Decimal(0),
        )
        value = magnitude.quantize(Decimal(1).scaleb(-dscale))
        return -value if sign == NUMERIC_NEG else value


MAX_DECIMAL_38_6 = Decimal("9" * 32 + "." + "9" * 6)
NUMERICS = [
    "0", "0.00", "0.05", "-0.07", "0.001", "1E-38", "-1E-38", "0.10", "12.05", "100", "1E+20",
    "1e20", "150.75", "-150.75", "0.0001", "0.00001", "10000", "10000.0001", "-9999.9999",
    "123456789.123456789", "0.000000000000000000000000000000000001", "5E+3", "-0.5",
    str(MAX_DECIMAL_38_6), str(-MAX_DECIMAL_38_6),
]  # fmt: skip


@pytest.mark.parametrize("text", NUMERICS)
def test_binary_numeric_round_trips_with_its_scale(text):
    value = Decimal(text)
    decoded = decode_numeric(wire.encoder(wire.NUMERIC, 1)(value))
    assert decoded == value
    # The display scale (digits after the point) is the value's own, as numeric_out shows it.
    assert decoded.as_tuple().exponent == min(0, value.as_tuple().exponent)


def test_binary_numeric_of_many_values_round_trips():
    for units in range(-20001, 20002, 7):
        for exponent in range(-12, 3):
            value = Decimal(units).scaleb(exponent)
            assert decode_numeric(wire.encoder(wire.NUMERIC, 1)(value)) == value, value


def test_binary_numeric_nan_and_negative_zero():
    assert decode_numeric(wire.encoder(wire.NUMERIC, 1)(Decimal("NaN"))).is_nan()
    data = wire.encoder(wire.NUMERIC, 1)(Decimal("-0.00"))
    assert struct.unpack_from("!hhHh", data) == (0, 0, NUMERIC_POS, 2)
