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


@pytest.mark.parametrize(
    ("duckdb_type", "expected"),
    [
        ("DECIMAL(10,2)", (wire.NUMERIC, ((10 << 16) | 2) + 4)),
        ("DECIMAL(10,2)[]", (wire.NUMERIC_ARRAY, -1)),
        ("BIGINT[]", (wire.INT8_ARRAY, -1)),
        ("INTEGER[3]", (wire.INT4_ARRAY, -1)),
        ("VARCHAR[]", (wire.VARCHAR_ARRAY, -1)),
        ("VARCHAR[][]", (wire.VARCHAR_ARRAY, -1)),
        ("BOOLEAN[]", (wire.BOOL_ARRAY, -1)),
        ("DATE[]", (wire.TEXT_ARRAY, -1)),
        ("STRUCT(a INTEGER)", (wire.TEXT, -1)),
    ],
)
def test_pg_type_of_arrays_of_any_element(duckdb_type, expected):
    # The array suffix is looked at first: DECIMAL(10,2)[] used to be parsed as a decimal.
    assert wire.pg_type(duckdb_type) == expected


def test_a_type_without_a_binary_encoder_goes_out_in_text_and_says_so():
    assert wire.result_format(wire.NUMERIC, 1) == 1
    assert wire.result_format(wire.UNKNOWN, 1) == 0
    assert wire.result_format(wire.INT8, 0) == 0
    assert wire.encoder(wire.UNKNOWN, wire.result_format(wire.UNKNOWN, 1))("x") == b"x"


def decode_array(data: bytes, decode_element) -> list:
    """PostgreSQL's binary array (array_send in src/backend/utils/adt/arrayfuncs.c), decoded
    here without wire.py: ndim, has-nulls flag, element OID, (length, lower bound) per
    dimension, then each element as a length (-1: NULL) and its bytes."""
    ndim, _, _ = struct.unpack_from("!iii", data)
    lengths = [struct.unpack_from("!ii", data, 12 + 8 * d)[0] for d in range(ndim)]
    pos, elements = 12 + 8 * ndim, []
    while pos < len(data):
        (length,) = struct.unpack_from("!i", data, pos)
        pos += 4
        elements.append(None if length < 0 else decode_element(data[pos : pos + length]))
        pos += max(length, 0)
    for length in reversed(lengths[1:]):
        elements = [elements[i : i + length] for i in range(0, len(elements), length)]
    return elements


@pytest.mark.parametrize(
    ("duckdb_type", "value", "element_oid", "decode_element"),
    [
        ("BIGINT[]", [1, None, -3], wire.INT8, lambda b: struct.unpack("!q", b)[0]),
        ("INTEGER[]", [], wire.INT4, lambda b: struct.unpack("!i", b)[0]),
        ("DECIMAL(10,2)[]", [Decimal("0.05"), Decimal("-1.50")], wire.NUMERIC, decode_numeric),
        ("VARCHAR[]", ["x", "y z", None, "é"], wire.VARCHAR, lambda b: b.decode()),
        ("VARCHAR[][]", [["a", "b"], ["c", "d"]], wire.VARCHAR, lambda b: b.decode()),
        ("BOOLEAN[]", [True, False], wire.BOOL, lambda b: b == b"\x01"),
    ],
)
def test_arrays_in_binary_as_postgresql_sends_them(duckdb_type, value, element_oid, decode_element):
    oid, _ = wire.pg_type(duckdb_type)
    assert wire.result_format(oid, 1) == 1
    data = wire.encoder(oid, 1)(value)
    assert struct.unpack_from("!i", data, 8)[0] == element_oid
    assert decode_array(data, decode_element) == value


def test_a_ragged_array_is_refused_as_postgresql_refuses_it():
    with pytest.raises(wire.SqlError) as refused:
        wire.encoder(wire.VARCHAR_ARRAY, 1)([["a", "b"], ["c"]])
    assert refused.value.sqlstate == "2202E"
