"""The chaos oracle's customer_details and customer_360 rows, and how marts are read and
compared: as multisets, so a row held twice is seen (no services)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest

from customer360.chaos.oracle import (
    CUSTOMER_360_COLUMNS,
    DETAILS_COLUMNS,
    MART_COLUMNS,
    SourceData,
    age_in_years,
    as_date,
    expected_marts,
    marts_rows,
)
from customer360.chaos.verify import check_serving, compare_marts

T = datetime(2026, 3, 1, 12, 0)


def order(key: str, customer_id: int, minutes: int, *products: str) -> dict:
    items = [
        {"product_name": p, "category": "Tops", "price": 10.0, "quantity": 1} for p in products
    ]
    return {"_id": key, "user_id": customer_id, "date": T + timedelta(minutes=minutes),
            "items": items, "status": "delivered"}  # fmt: skip


def user(customer_id: int, dob, **fields) -> dict:
    return {"_id": f"u{customer_id}", "id": customer_id, "first_name": f"F{customer_id}",
            "last_name": "L", "email": f"c{customer_id}@example.com", "gender": "Female",
            "dob": dob, "address": {"city": "Lyon", "country": "France"},
            "created_at": T, "updated_at": T, **fields}  # fmt: skip


def sources(users: list[dict], online_orders: list[dict]) -> SourceData:
    return SourceData(
        messages={"weblogs": [], "marketing_emails": []},
        documents={"users": users, "online_orders": online_orders, "instore_orders": []},
    )


def profile_of(marts: dict, customer_id: int) -> dict:
    row = next(r for r in marts["customer_360"] if r[0] == customer_id)
    return dict(zip(CUSTOMER_360_COLUMNS, row, strict=True))


def test_the_favourite_product_is_the_most_bought_then_the_latest_then_a_to_z():
    marts = expected_marts(
        sources(
            [user(1, "1990-01-01"), user(2, "1990-01-01"), user(3, "1990-01-01")],
            [
                # 1: A and B twice each, B bought last -> B; C once
                order("o1", 1, 0, "A", "B", "C"), order("o2", 1, 5, "A"), order("o3", 1, 9, "B"),
                # 2: same purchases, same time -> the name first A-Z (product names upper-cased)
                order("o4", 2, 0, "zed", "Alpha"),
            ],
        )
    )  # fmt: skip
    one, two, three = (profile_of(marts, c) for c in (1, 2, 3))
    assert (one["favourite_product"], one["favourite_product_purchases"]) == ("B", 2)
    assert (two["favourite_product"], two["favourite_product_purchases"]) == ("ALPHA", 1)
    assert (three["favourite_product"], three["favourite_product_purchases"]) == (None, None)
    assert (one["total_orders"], one["total_items_purchased"]) == (3, 5)
    assert one["total_amount_spent"] == Decimal("50")
    assert three["total_orders"] == 0 and three["latest_error_message"] is None


def test_customer_details_read_the_users_document_with_age_on_the_reading_day():
    today = datetime.now(UTC).date()
    birthday_tomorrow = (today + timedelta(days=1)).replace(year=today.year - 30)
    users = [
        user(1, today.replace(year=today.year - 40).isoformat()),  # a birthday today: 40
        user(2, birthday_tomorrow.isoformat()),  # 30 tomorrow: 29 today
        user(3, (today + timedelta(days=1)).isoformat()),  # born after today: no age
        user(4, "1990-02-30"),  # not a date
        user(5, " 1990-6-5\n", address="no address"),  # a dob as json_date reads it
    ]
    if birthday_tomorrow.month == 2 and birthday_tomorrow.day == 29:
        pytest.skip("tomorrow is 29 February: no such day 30 years ago")
    details = {row[0]: row for row in expected_marts(sources(users, []))["customer_details"]}
    assert details[1] == (1, "F1", "L", "c1@example.com", "Female",
                          today.replace(year=today.year - 40), 40, "Lyon", "France")  # fmt: skip
    assert details[2][5:7] == (birthday_tomorrow, 29)
    assert details[3][5:7] == (today + timedelta(days=1), None)
    assert details[4][5:7] == (None, None)
    assert details[5][5:] == (date(1990, 6, 5), age_in_years(date(1990, 6, 5), today), None, None)
    assert tuple(CUSTOMER_360_COLUMNS[: len(DETAILS_COLUMNS)]) == DETAILS_COLUMNS


def test_age_of_a_29_february_birthday_comes_on_1_march_in_other_years():
    born = date(2000, 2, 29)
    assert age_in_years(born, date(2023, 2, 28)) == 22
    assert age_in_years(born, date(2023, 3, 1)) == 23
    assert age_in_years(born, date(2024, 2, 29)) == 24
    assert age_in_years(born, date(2000, 2, 28)) is None


@pytest.mark.parametrize(
    "text",
    ["1990-06-15", "1990-6-5", " 1990-06-15", "1990-06-15\n", "\t1990-06-15", "90-06-15",
     "1990-06-15T00:00:00", "01990-06-15", "1990-02-30", "+1990-06-15", "1990-06-15x",
     "12345-01-01", "1990-006-15", "1990 -06-15", ""],
)  # fmt: skip
def test_as_date_reads_what_json_date_reads(text):
    """The oracle's own reading of a dob agrees with dbt's json_date (try_strptime %Y-%m-%d)
    on text at the edges of the format."""
    with duckdb.connect() as con:
        dbt = con.execute("select try_cast(try_strptime(?, '%Y-%m-%d') as date)", [text])
        assert as_date(text) == dbt.fetchone()[0]


def mart_tables(con, schema: str) -> None:
    """Every relation marts_rows reads, empty, untyped (varchar)."""
    if schema:
        con.execute(f"create schema {schema.rstrip('.')}")
    for mart, columns in MART_COLUMNS.items():
        con.execute(f"create table {schema}{mart} ({', '.join(f'{c} varchar' for c in columns)})")


def test_marts_rows_counts_a_row_held_twice():
    with duckdb.connect() as con:
        mart_tables(con, "marts.")
        con.execute("insert into marts.customer_consent values ('1', 'granted', null, 'profile')")
        con.execute("insert into marts.customer_consent values ('1', 'granted', null, 'profile')")
        rows = marts_rows(con)["customer_consent"]
    assert rows == Counter({("1", "granted", None, "profile"): 2})


def test_a_row_held_twice_or_a_key_held_twice_counts_as_duplicates():
    row, other = (1, "granted", T, "profile"), (1, "withdrawn", T, "profile")
    expected = {"customer_consent": {row}}
    twice = compare_marts(expected, {"customer_consent": Counter({row: 2})}, "test")
    assert (twice.lost, twice.duplicates, twice.mismatches) == (0, 1, 0), twice.examples
    keyed = compare_marts(expected, {"customer_consent": Counter([row, other])}, "test")
    assert (keyed.lost, keyed.duplicates, keyed.mismatches) == (0, 1, 0), keyed.examples
    # both rows of the key wrong: a mismatch, and the second row a duplicate
    wrong = (1, "unknown", None, None)
    both = compare_marts(expected, {"customer_consent": Counter([other, wrong])}, "test")
    assert (both.lost, both.duplicates, both.mismatches) == (0, 1, 1), both.examples
    assert compare_marts(expected, {"customer_consent": Counter([row])}, "test").ok


class FakeApi:
    """The profile API of a serving copy, answering with the given profiles."""

    def __init__(self, profiles: dict[int, dict]):
        self.profiles = profiles

    def get(self, path: str):
        customer_id = int(path.rsplit("/", 1)[1])
        profile = self.profiles.get(customer_id)
        return (200, profile) if profile else (404, None)


def test_check_serving_sees_an_entry_the_api_repeats_and_details_it_gets_wrong(tmp_path):
    from customer360.config import Settings

    settings = Settings(serving_db=tmp_path / "serving.duckdb")
    with duckdb.connect(str(settings.serving_path)) as con:
        mart_tables(con, "")
        con.execute("create table customer_360_base (customer_id bigint)")
        con.execute("create table audience_definitions (audience varchar, channel varchar)")
    data = sources([user(1, "1990-01-01")], [order("o1", 1, 0, "A")])
    stats = {"channel": "Online", "number_of_orders": 1, "number_of_items_purchased": 1,
             "items_per_order": 1.0, "amount_spent": 10.0}  # fmt: skip
    details = {"customer_id": 1, "first_name": "F1", "last_name": "L",
               "email": "c1@example.com", "gender": "Female", "dob": "1990-01-01",
               "age": age_in_years(date(1990, 1, 1), datetime.now(UTC).date()),
               "city": "Lyon", "country": "France"}  # fmt: skip
    activity = [{"event": "Online Order", "last_at": "2026-03-01T12:00:00Z"}]
    right = {"details": details, "purchase_stats": [stats], "activity": activity}

    def api_findings(profile: dict) -> list[str]:
        found = check_serving(settings, data, FakeApi({1: profile}), set())[0]
        return [e for e in found.examples if "API" in e]

    assert api_findings(right) == []
    repeated = api_findings({**right, "purchase_stats": [stats, stats]})
    assert len(repeated) == 1 and "API purchase stats of 1" in repeated[0], repeated
    renamed = api_findings({**right, "details": {**details, "last_name": "WRONG"}})
    assert len(renamed) == 1 and "API details of 1" in renamed[0], renamed
