"""The extractor quarantines the JSON that staging's DuckDB would read differently from Python:
such a record landed in raw, and staging rejected it (or read another record) instead."""

from __future__ import annotations

import json

import duckdb
import pytest

from extractors.kafka_source import quarantine_reason

WEBLOG = '"event_id": "e1", "user_id": 1, "date": "2026-06-01T10:00:00Z"'


def duckdb_reads(expression: str, text: str) -> object:
    """`expression` of the JSON `text` (as `?`), as staging's DuckDB computes it."""
    return duckdb.connect().execute(f"select {expression}", [text]).fetchone()[0]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    value = f'{{{WEBLOG}, "page": {constant}}}'.encode()
    assert quarantine_reason("weblogs", value) == f"invalid JSON: {constant} is not a JSON value"


@pytest.mark.parametrize(
    "text",
    [
        '{"event_id": "e1", "event_id": null, "user_id": 1, "date": "2026-06-01T10:00:00Z"}',
        f'{{{WEBLOG}, "session": {{"event_id": 1, "event_id": 2}}}}',
    ],
)
def test_a_repeated_key_is_named(text: str) -> None:
    assert quarantine_reason("weblogs", text.encode()) == (
        "invalid JSON: key 'event_id' appears more than once in an object"
    )


def test_python_and_duckdb_disagree_on_a_repeated_key() -> None:
    """Why repeated keys are quarantined: json.loads keeps the last, DuckDB the first."""
    text = '{"event_id": "e1", "event_id": null}'
    assert json.loads(text)["event_id"] is None
    assert duckdb_reads("json_extract_string(?, '$.event_id')", text) == "e1"


@pytest.mark.parametrize("escape", [r"\ud800", r"\udc00", r"x\ud83dy"])
def test_half_a_surrogate_pair_is_not_json_to_duckdb(escape: str) -> None:
    text = f'{{{WEBLOG}, "page": "{escape}"}}'
    assert quarantine_reason("weblogs", text.encode()).startswith("invalid JSON: a \\u escape")
    assert duckdb_reads("json_valid(?)", text) is False
    key_text = f'{{{WEBLOG}, "{escape}": 1}}'
    assert quarantine_reason("weblogs", key_text.encode()).startswith("invalid JSON")


@pytest.mark.parametrize("escape", [r"\ud83d\ude00", r"\u00e9", r"\u0000"])
def test_other_escapes_land(escape: str) -> None:
    text = f'{{{WEBLOG}, "page": "{escape}", "tags": [["{escape}"]]}}'
    assert quarantine_reason("weblogs", text.encode()) is None
    assert duckdb_reads("json_valid(?)", text) is True


def test_deep_nesting_with_an_escape_does_not_raise() -> None:
    depth = 900  # under the parser's limit, over what a recursive walk of it could take
    text = f'{{{WEBLOG}, "deep": {"[" * depth}"\\u00e9"{"]" * depth}}}'
    assert quarantine_reason("weblogs", text.encode()) is None
