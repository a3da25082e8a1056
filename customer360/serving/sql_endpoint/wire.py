"""The PostgreSQL frontend/backend protocol (version 3.0): message framing and value encoding.

Only what a SQL endpoint serving query results needs: the server side of startup, SCRAM-SHA-256
authentication, simple and extended query, and errors (PostgreSQL's documentation, "Frontend/
Backend Protocol", chapter "Message Formats"). Values go out in text format, or in binary format
for the types drivers ask it for (pgJDBC does, for a statement it has prepared on the server).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import math
import re
import secrets
import struct
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

# Type OIDs (PostgreSQL's pg_type.dat) and their length (typlen, -1 variable).
BOOL, BYTEA, INT8, INT2, INT4, TEXT, OID, JSON = 16, 17, 20, 21, 23, 25, 26, 114
FLOAT4, FLOAT8, UNKNOWN = 700, 701, 705
VARCHAR, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL = 1043, 1082, 1083, 1114, 1184, 1186
NUMERIC, UUID = 1700, 2950
BOOL_ARRAY, INT2_ARRAY, INT4_ARRAY, TEXT_ARRAY = 1000, 1005, 1007, 1009
VARCHAR_ARRAY, INT8_ARRAY, FLOAT8_ARRAY, NUMERIC_ARRAY = 1015, 1016, 1022, 1231
TYPE_LENGTHS = {
    BOOL: 1, INT2: 2, INT4: 4, INT8: 8, OID: 4, FLOAT4: 4, FLOAT8: 8, DATE: 4, TIME: 8,
    TIMESTAMP: 8, TIMESTAMPTZ: 8, INTERVAL: 16, UUID: 16,
}  # fmt: skip

# DuckDB type name -> PostgreSQL type OID.
_SCALAR_OIDS = {
    "BOOLEAN": BOOL,
    "TINYINT": INT2,
    "SMALLINT": INT2,
    "UTINYINT": INT2,
    "INTEGER": INT4,
    "USMALLINT": INT4,
    "BIGINT": INT8,
    "UINTEGER": INT8,
    "HUGEINT": NUMERIC,
    "UBIGINT": NUMERIC,
    "UHUGEINT": NUMERIC,
    "FLOAT": FLOAT4,
    "DOUBLE": FLOAT8,
    "VARCHAR": VARCHAR,
    "DATE": DATE,
    "TIME": TIME,
    "TIMESTAMP": TIMESTAMP,
    "TIMESTAMP_S": TIMESTAMP,
    "TIMESTAMP_MS": TIMESTAMP,
    "TIMESTAMP_NS": TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ,
    "INTERVAL": INTERVAL,
    "BLOB": BYTEA,
    "UUID": UUID,
    "JSON": JSON,
    '"NULL"': TEXT,
}
_ARRAY_OIDS = {
    BOOL: BOOL_ARRAY, INT2: INT2_ARRAY, INT4: INT4_ARRAY, INT8: INT8_ARRAY,
    FLOAT8: FLOAT8_ARRAY, NUMERIC: NUMERIC_ARRAY, VARCHAR: VARCHAR_ARRAY,
}  # fmt: skip
# A list (`INTEGER[]`) or fixed-size array (`INTEGER[3]`) of DuckDB, of any element type.
_ARRAY_SUFFIX = re.compile(r"\[\d*\]$")


def pg_type(duckdb_type: str) -> tuple[int, int]:
    """(type OID, type modifier) shown to clients for a DuckDB column type."""
    name = duckdb_type.upper()
    # The array suffix first: DECIMAL(10,2)[] is an array, not a decimal.
    suffix = _ARRAY_SUFFIX.search(name)
    if suffix is not None:
        element, _ = pg_type(name[: suffix.start()])
        return _array_oid(element), -1
    if name.startswith("DECIMAL"):
        precision, _, scale = name[len("DECIMAL(") : -1].partition(",")
        if precision and scale:
            return NUMERIC, ((int(precision) << 16) | int(scale)) + 4
        return NUMERIC, -1
    return _SCALAR_OIDS.get(name, TEXT), -1


def _array_oid(element: int) -> int:
    """PostgreSQL's array type of an element type; a nested array is one array type, as in
    PostgreSQL (`int8[][]` is `_int8`)."""
    if element in _ARRAY_OIDS.values() or element == TEXT_ARRAY:
        return element
    return _ARRAY_OIDS.get(element, TEXT_ARRAY)


class ProtocolError(Exception):
    """A message this server cannot understand: the connection is closed."""


@dataclass
class SqlError(Exception):
    """An error reported to the client as an ErrorResponse; the session goes on."""

    message: str
    sqlstate: str = "XX000"
    severity: str = "ERROR"

    def __str__(self) -> str:
        return self.message


# -- reading ---------------------------------------------------------------------------------


class Reader:
    """Reads a message's body field by field."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def int16(self) -> int:
        (value,) = struct.unpack_from("!h", self.data, self.pos)
        self.pos += 2
        return value

    def int32(self) -> int:
        (value,) = struct.unpack_from("!i", self.data, self.pos)
        self.pos += 4
        return value

    def cstring(self) -> str:
        end = self.data.index(b"\x00", self.pos)
        value = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return value

    def raw(self, n: int) -> bytes:
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value


# -- writing ---------------------------------------------------------------------------------


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(value: str) -> bytes:
    return value.encode("utf-8") + b"\x00"


def authentication(code: int, payload: bytes = b"") -> bytes:
    return message(b"R", struct.pack("!i", code) + payload)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return message(b"K", struct.pack("!iI", pid, secret))


def ready_for_query(status: bytes) -> bytes:
    return message(b"Z", status)


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def error_response(error: SqlError) -> bytes:
    fields = b"S" + cstr(error.severity) + b"V" + cstr(error.severity) + b"C" + cstr(error.sqlstate)
    return message(b"E", fields + b"M" + cstr(error.message) + b"\x00")


def notice_response(text: str) -> bytes:
    return message(b"N", b"SNOTICE\x00VNOTICE\x00C00000\x00M" + cstr(text) + b"\x00")


def parameter_description(oids: list[int]) -> bytes:
    return message(b"t", struct.pack(f"!h{len(oids)}i", len(oids), *oids))


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int = -1
    table_oid: int = 0
    column_number: int = 0


def row_description(columns: list[Column], formats: list[int]) -> bytes:
    body = [struct.pack("!h", len(columns))]
    for column, fmt in zip(columns, formats, strict=True):
        body.append(cstr(column.name))
        body.append(
            struct.pack(
                "!ihihih",
                column.table_oid,
                column.column_number,
                column.type_oid,
                TYPE_LENGTHS.get(column.type_oid, -1),
                column.type_modifier,
                fmt,
            )
        )
    return message(b"T", b"".join(body))


def data_row(values: tuple, encoders: list) -> bytes:
    parts = [struct.pack("!h", len(values))]
    for value, encode in zip(values, encoders, strict=True):
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            data = encode(value)
            parts.append(struct.pack("!i", len(data)))
            parts.append(data)
    body = b"".join(parts)
    return b"D" + struct.pack("!i", len(body) + 4) + body


# -- values ----------------------------------------------------------------------------------

_PG_EPOCH = dt.datetime(2000, 1, 1)
_PG_EPOCH_DATE = dt.date(2000, 1, 1)


def _text_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _array_item(value: Any) -> str:
    if value is None:
        return "NULL"
    text = to_text(value)
    if text == "" or any(c in text for c in '{},"\\ ') or text.upper() == "NULL":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def to_text(value: Any) -> str:
    """A Python value from DuckDB in PostgreSQL's text output format."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _text_float(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
        return text[:-3] if value.tzinfo is not None and text.endswith(":00") else text
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        seconds = value.seconds + value.microseconds / 1e6
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{value.days} days {int(hours):02d}:{int(minutes):02d}:{secs:09.6f}"
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return "{" + ",".join(_array_item(v) for v in value) + "}"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _encode_text(value: Any) -> bytes:
    return to_text(value).encode("utf-8")


def _numeric_binary(value: Decimal) -> bytes:
    """NUMERIC in binary (PostgreSQL's numeric_send): the count of base-10000 digits, the
    weight of the first (the power of 10000 it is worth), sign, display scale, the digits."""
    if value.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    sign, digits, exponent = value.as_tuple()
    scale = max(0, -exponent)
    # Every decimal digit of |value|, with at least one before the point: 0.05 is "005", so
    # the fraction keeps its leading zeros (sliced off it, 0.05 used to read as 0.50).
    decimal_digits = ("".join(map(str, digits)) + "0" * max(0, exponent)).zfill(scale + 1)
    integer, fraction = decimal_digits[: len(decimal_digits) - scale], decimal_digits[-scale:]
    integer = integer.zfill(-(-len(integer) // 4) * 4)  # whole groups left of the point
    fraction = fraction.ljust(-(-scale // 4) * 4, "0") if scale else ""  # and right of it
    groups = [int(integer[i : i + 4]) for i in range(0, len(integer), 4)]
    weight = len(groups) - 1
    groups += [int(fraction[i : i + 4]) for i in range(0, len(fraction), 4)]
    while groups and groups[-1] == 0:
        groups.pop()
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    if not groups:  # zero: no digits, weight 0, positive (PostgreSQL has no -0)
        weight, sign = 0, 0
    header = struct.pack("!hhHh", len(groups), weight, 0x4000 if sign else 0, scale)
    return header + struct.pack(f"!{len(groups)}H", *groups)


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _timestamp_binary(value: dt.datetime) -> bytes:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return struct.pack("!q", _micros(value - _PG_EPOCH))


def _time_binary(value: dt.time) -> bytes:
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
    return struct.pack("!q", micros + value.microsecond)


def _interval_binary(value: dt.timedelta) -> bytes:
    micros = value.seconds * 1_000_000 + value.microseconds
    return struct.pack("!qii", micros, value.days, 0)


_BINARY_ENCODERS = {
    BOOL: lambda v: b"\x01" if v else b"\x00",
    INT2: lambda v: struct.pack("!h", v),
    INT4: lambda v: struct.pack("!i", v),
    INT8: lambda v: struct.pack("!q", v),
    OID: lambda v: struct.pack("!I", v),
    FLOAT4: lambda v: struct.pack("!f", v),
    FLOAT8: lambda v: struct.pack("!d", v),
    NUMERIC: lambda v: _numeric_binary(Decimal(v)),
    DATE: lambda v: struct.pack("!i", (v - _PG_EPOCH_DATE).days),
    TIME: _time_binary,
    TIMESTAMP: _timestamp_binary,
    TIMESTAMPTZ: _timestamp_binary,
    INTERVAL: _interval_binary,
    UUID: lambda v: v.bytes if isinstance(v, uuid.UUID) else uuid.UUID(str(v)).bytes,
    BYTEA: bytes,
    # text, varchar and json are sent as their UTF-8 text in binary too (textsend, json_send)
    TEXT: _encode_text,
    VARCHAR: _encode_text,
    JSON: _encode_text,
}
# Array type -> element type: an array of any element goes out in binary (array_send); a
# `_text` array holds what PostgreSQL has no array type for here (dates, ...) as text.
_ARRAY_ELEMENTS = {array: element for element, array in _ARRAY_OIDS.items()} | {TEXT_ARRAY: TEXT}


def _array_dimensions(value: list) -> list[int]:
    """The lengths of a (nested) list's dimensions; PostgreSQL's arrays are rectangular."""
    dimensions, level = [], value
    while isinstance(level, list | tuple) and level:
        dimensions.append(len(level))
        level = level[0]
    return dimensions


def _array_binary(element_oid: int, value: list) -> bytes:
    """An array in binary (array_send): dimensions, a has-nulls flag, the element type, then
    each dimension's length and lower bound (1), then the elements, row-major."""
    dimensions = _array_dimensions(value)
    elements = list(value)
    for length in dimensions[1:]:
        if any(not isinstance(e, list | tuple) or len(e) != length for e in elements):
            raise SqlError(
                "multidimensional arrays must have array expressions with matching dimensions",
                "2202E",
            )
        elements = [item for e in elements for item in e]
    if any(isinstance(e, list | tuple) for e in elements):  # [[]]: an empty inner array
        raise SqlError("multidimensional arrays must have matching, non-empty dimensions", "2202E")
    encode = _BINARY_ENCODERS[element_oid]
    has_null = any(e is None for e in elements)
    parts = [struct.pack("!iii", len(dimensions), int(has_null), element_oid)]
    parts += [struct.pack("!ii", length, 1) for length in dimensions]
    for element in elements:
        data = b"" if element is None else encode(element)
        parts.append(struct.pack("!i", -1 if element is None else len(data)) + data)
    return b"".join(parts)


for _array, _element in _ARRAY_ELEMENTS.items():
    _BINARY_ENCODERS[_array] = lambda v, element=_element: _array_binary(element, v)


def result_format(type_oid: int, requested: int) -> int:
    """The format a column goes out in: binary only when asked and this server can encode the
    type in binary, so the row description never labels text as binary (arrays)."""
    return 1 if requested == 1 and type_oid in _BINARY_ENCODERS else 0


def encoder(type_oid: int, fmt: int):
    """The function turning a (non-null) value into its bytes on the wire."""
    if fmt == 1 and type_oid in _BINARY_ENCODERS:
        return _BINARY_ENCODERS[type_oid]
    return _encode_text


def decode_parameter(data: bytes, type_oid: int, fmt: int) -> Any:
    """A bound parameter's value as Python, for DuckDB to cast to what the query needs."""
    if fmt == 0:
        text = data.decode("utf-8")
        if type_oid in (INT2, INT4, INT8, OID):
            return int(text)
        if type_oid in (FLOAT4, FLOAT8):
            return float(text)
        if type_oid == NUMERIC:
            return Decimal(text)
        if type_oid == BOOL:
            return text.lower() in ("t", "true", "1", "yes", "on", "y")
        return text
    if type_oid == INT2:
        return struct.unpack("!h", data)[0]
    if type_oid in (INT4, OID):
        return struct.unpack("!i", data)[0]
    if type_oid == INT8:
        return struct.unpack("!q", data)[0]
    if type_oid == FLOAT4:
        return struct.unpack("!f", data)[0]
    if type_oid == FLOAT8:
        return struct.unpack("!d", data)[0]
    if type_oid == BOOL:
        return data != b"\x00"
    if type_oid == DATE:
        return _PG_EPOCH_DATE + dt.timedelta(days=struct.unpack("!i", data)[0])
    if type_oid in (TIMESTAMP, TIMESTAMPTZ):
        value = _PG_EPOCH + dt.timedelta(microseconds=struct.unpack("!q", data)[0])
        return value.replace(tzinfo=dt.UTC) if type_oid == TIMESTAMPTZ else value
    if type_oid == UUID:
        return uuid.UUID(bytes=data)
    if type_oid == BYTEA:
        return data
    return data.decode("utf-8")


# -- SCRAM-SHA-256 (RFC 5802, RFC 7677), the server side ---------------------------------------

SCRAM_ITERATIONS = 4096


class ScramVerifier:
    """What the server keeps of a password: salt, iterations, stored and server keys."""

    def __init__(self, password: str):
        self.salt = secrets.token_bytes(16)
        salted = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8"), self.salt, SCRAM_ITERATIONS
        )
        self.stored_key = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
        self.server_key = _hmac(salted, b"Server Key")

    def __repr__(self) -> str:
        return "ScramVerifier(...)"


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _scram_fields(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


class ScramExchange:
    """One client's SCRAM-SHA-256 exchange: client-first -> server-first -> client-final."""

    def __init__(self, verifier: ScramVerifier):
        self.verifier = verifier
        self.gs2_header = ""
        self.client_first_bare = ""
        self.server_first = ""
        self.nonce = ""

    def server_first_message(self, client_first: str) -> str:
        if not client_first.startswith(("n,", "y,")):
            raise SqlError("SCRAM channel binding is not supported", "28000", "FATAL")
        header_end = client_first.index(",", 2) + 1
        self.gs2_header = client_first[:header_end]
        self.client_first_bare = client_first[header_end:]
        client_nonce = _scram_fields(self.client_first_bare).get("r", "")
        if not client_nonce:
            raise SqlError("malformed SCRAM message", "08P01", "FATAL")
        self.nonce = client_nonce + base64.b64encode(secrets.token_bytes(18)).decode()
        salt = base64.b64encode(self.verifier.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={SCRAM_ITERATIONS}"
        return self.server_first

    def server_final_message(self, client_final: str) -> str | None:
        """`v=<signature>` when the proof is right, None when the password is wrong."""
        without_proof, _, proof_field = client_final.rpartition(",p=")
        fields = _scram_fields(without_proof)
        expected_binding = base64.b64encode(self.gs2_header.encode()).decode()
        if fields.get("r") != self.nonce or fields.get("c") != expected_binding:
            return None
        try:
            proof = base64.b64decode(proof_field, validate=True)
        except ValueError:
            return None
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        signature = _hmac(self.verifier.stored_key, auth_message)
        if len(proof) != len(signature):
            return None
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self.verifier.stored_key):
            return None
        server_signature = _hmac(self.verifier.server_key, auth_message)
        return "v=" + base64.b64encode(server_signature).decode()
