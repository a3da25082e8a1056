"""Profile API over the published serving copy: real Mongo + Kafka -> micro-batch -> publish."""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from customer360.config import Settings, load_settings
from customer360.pipeline import MicroBatch
from customer360.serving import publish_serving_copy
from customer360.serving.benchmark import build_synthetic_warehouse
from customer360.serving.cli import UnsafeBind, check_bind
from customer360.serving.server import BackgroundServer
from tests.extractor_helpers import mongo_db, produce, weblog


def get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_profile_search_404_bad_input_and_deleted_customer(isolated_settings, caplog):
    settings = isolated_settings
    db = mongo_db(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    db.users.insert_many(
        [
            {
                "id": 1,
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": "ada@example.org",
                "gender": "Female",
                "dob": "1990-05-17",
                "address": {"city": "London", "country": "United Kingdom"},
                "created_at": now,
                "updated_at": now,
            },
            {
                "id": 2,
                "first_name": "Alan",
                "last_name": "Turing",
                "email": "alan@example.org",
                "gender": "Male",
                "dob": "1985-06-23",
                "address": {"city": "Wilmslow", "country": "United Kingdom"},
                "created_at": now,
                "updated_at": now,
            },
        ]
    )
    db.online_orders.insert_one(
        {
            "user_id": 1,
            "date": now - timedelta(days=2),
            "items": [
                {"product_name": "Red Shirt", "price": 20.0, "quantity": 2},
                {"product_name": "Hat", "price": 5.5, "quantity": 1},
            ],
        }
    )
    db.instore_orders.insert_one(
        {
            "user_id": 1,
            "date": now - timedelta(days=1),
            "items": [{"product_name": "red shirt", "price": 10.0, "quantity": 1}],
        }
    )
    error_at = (now - timedelta(minutes=5)).isoformat()
    produce(
        settings,
        "weblogs",
        [json.dumps(weblog(1, date=error_at, page="cart.html", error_message="Payment failed"))],
    )

    with MicroBatch(settings) as batch:
        assert batch.run().success
        # (MicroBatch.publish may already have published it; then this finds nothing new.)
        publish_serving_copy(batch.con, settings)
        copy = settings.serving_path.stat()
        # Nothing new: the copy is not rewritten.
        assert batch.run().success
        assert not publish_serving_copy(batch.con, settings).published
        assert settings.serving_path.stat().st_ino == copy.st_ino

        with BackgroundServer(settings, port=0) as server, caplog.at_level(logging.INFO):
            status, page = get(f"{server.url}/api/customers?q=LOVE")
            assert status == 200 and [c["customer_id"] for c in page["items"]] == [1]
            status, page = get(f"{server.url}/api/customers?q=example.org&limit=1&offset=1")
            assert status == 200 and page["total"] == 2
            assert [c["customer_id"] for c in page["items"]] == [2]
            status, page = get(f"{server.url}/api/customers?q=2")
            assert page["items"][0]["customer_id"] == 2

            status, profile = get(f"{server.url}/api/customers/1")
            assert status == 200, profile
            assert profile["details"]["email"] == "ada@example.org"
            today = datetime.now(UTC).date()
            expected_age = today.year - 1990 - ((today.month, today.day) < (5, 17))
            assert profile["details"]["age"] == expected_age
            stats = {s["channel"]: s for s in profile["purchase_stats"]}
            assert stats["Online"]["number_of_orders"] == 1
            assert stats["Online"]["number_of_items_purchased"] == 2
            assert stats["Online"]["amount_spent"] == pytest.approx(45.5)
            assert stats["Instore"]["amount_spent"] == pytest.approx(10.0)
            assert profile["totals"]["total_amount_spent"] == pytest.approx(55.5)
            assert profile["favourite_products"][0] == {
                "product_name": "RED SHIRT",
                "purchases": 2,
                "last_purchased_at": profile["favourite_products"][0]["last_purchased_at"],
            }
            assert profile["recent_errors"][0]["error_message"] == "Payment failed"
            assert profile["recent_errors"][0]["page"] == "cart.html"
            assert {a["event"] for a in profile["activity"]} >= {
                "Online Order",
                "Instore Order",
                "Website Visit",
            }
            assert profile["as_of"] is not None and profile["as_of_age_seconds"] >= 0
            assert profile["publication"]["customers"] == 2

            # Unknown customer, bad input: clear 4xx.
            assert get(f"{server.url}/api/customers/999")[0] == 404
            status, body = get(f"{server.url}/api/customers/abc")
            assert status == 422 and body["detail"][0]["loc"] == ["path", "customer_id"]
            assert get(f"{server.url}/api/customers/-1")[0] == 404  # an id, no such customer
            assert get(f"{server.url}/api/customers/--1")[0] == 422
            assert get(f"{server.url}/api/customers/{2**64}")[0] == 422
            status, body = get(f"{server.url}/api/customers?q={'x' * 101}")
            assert status == 422 and body["detail"][0]["type"] == "string_too_long"
            assert get(f"{server.url}/api/customers?q=a&limit=1000")[0] == 422
            # OpenAPI lists the endpoints.
            status, openapi = get(f"{server.url}/openapi.json")
            assert {"/api/customers", "/api/customers/{customer_id}"} <= set(openapi["paths"])

            # Delete customer 2 at the source; after the next micro-batch and publish: 404.
            db.users.delete_one({"id": 2})
            assert batch.run().success
            publish_serving_copy(batch.con, settings)
            assert settings.serving_path.stat().st_ino != copy.st_ino
            status, body = get(f"{server.url}/api/customers/2")
            assert status == 404, body
            assert get(f"{server.url}/api/customers?q=turing")[1]["total"] == 0

        # No personal data in the logs: no query strings, names, emails or ids.
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "GET /api/customers/{customer_id} 200" in logged
        for secret in ("LOVE", "love", "example.org", "turing", "/api/customers/1 "):
            assert secret not in logged


@pytest.fixture
def synthetic_settings(tmp_path) -> Settings:
    """A warehouse with contract-shaped marts (no services), published once."""
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", api_token="s3cret-token")
    with duckdb.connect(str(settings.warehouse)) as con:
        build_synthetic_warehouse(con, customers=50)
        publish_serving_copy(con, settings, force=True)
    return settings


def test_token_required_when_set(synthetic_settings):
    with BackgroundServer(synthetic_settings, port=0) as server:
        assert get(f"{server.url}/api/customers/7")[0] == 401
        assert get(f"{server.url}/api/customers/7", token="wrong")[0] == 401
        assert get(f"{server.url}/api/status")[0] == 401
        status, profile = get(f"{server.url}/api/customers/7", token="s3cret-token")
        assert status == 200 and profile["details"]["first_name"] == "First7"
        # The dashboard page itself holds no personal data and loads without the token.
        with urllib.request.urlopen(f"{server.url}/", timeout=10) as page:
            assert b"Customer 360" in page.read()


def test_a_token_with_non_ascii_characters_is_accepted_as_sent(synthetic_settings):
    """C360_API_TOKEN 'pässwört-token': curl sends a header's non-ASCII characters as typed
    (UTF-8), Python's http.client and a browser's fetch (the dashboard) as Latin-1: both -> 200
    (only Latin-1 was accepted before); the token without its umlauts -> 401."""
    settings = synthetic_settings.with_overrides(api_token="pässwört-token")
    with BackgroundServer(settings, port=0) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        statuses = []
        for sent in (
            "pässwört-token".encode(),
            "pässwört-token".encode("latin-1"),
            b"passwort-token",
        ):
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            connection.putrequest("GET", "/api/customers/7")
            connection.putheader("Authorization", b"Bearer " + sent)
            connection.endheaders()
            statuses.append(connection.getresponse().status)
            connection.close()
    assert statuses == [200, 200, 401]


def test_no_token_on_loopback_only(synthetic_settings):
    open_settings = synthetic_settings.with_overrides(api_token=None)
    with BackgroundServer(open_settings, port=0) as server:
        assert get(f"{server.url}/api/customers/7")[0] == 200
    check_bind(open_settings, "127.0.0.1")
    check_bind(open_settings, "::1")
    for host in ("0.0.0.0", "192.168.1.20", "example.org"):
        with pytest.raises(UnsafeBind, match="C360_API_TOKEN"):
            check_bind(open_settings, host)
    check_bind(synthetic_settings, "0.0.0.0")  # with a token: allowed


def test_serving_settings_from_environment(tmp_path: Path):
    settings = load_settings(
        {
            "C360_WAREHOUSE": str(tmp_path / "w.duckdb"),
            "C360_API_TOKEN": "t",
            "C360_SERVE_PORT": "9000",
        }
    )
    assert settings.serving_path == tmp_path / "serving.duckdb"
    assert (settings.api_token, settings.serve_host, settings.serve_port) == (
        "t",
        "127.0.0.1",
        9000,
    )
    other = load_settings({"C360_SERVING_DB": str(tmp_path / "s.duckdb")})
    assert other.serving_path == tmp_path / "s.duckdb"


def test_missing_serving_copy_is_a_clear_503(tmp_path):
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb")
    with BackgroundServer(settings, port=0) as server:
        status, body = get(f"{server.url}/api/customers/1")
    assert status == 503 and "c360 run-once" in body["detail"]
    # While `c360 up` loads the history, the answer points at what it prints, not at itself.
    assert "`c360 up` prints when" in body["detail"]


def test_age_in_the_serving_copy_is_computed_on_the_day_it_is_read(synthetic_settings):
    with duckdb.connect(str(synthetic_settings.serving_path), read_only=True) as con:
        view_sql = con.execute(
            "select sql from duckdb_views() where view_name = 'customer_360'"
        ).fetchone()[0]
        assert "now()" in view_sql  # dbt's SQL (macro age_in_years), computed when read
        # Same column order as the marts contract (age right after dob).
        columns = [r[0] for r in con.execute("describe customer_360").fetchall()]
        assert columns[5:8] == ["dob", "age", "city"]
        assert not [c for c in columns if c.startswith("_")]
        # The profile API looks customer_360_base up by customer_id: indexed.
        indexed = con.execute("select table_name, expressions from duckdb_indexes()").fetchall()
        assert indexed == [("customer_360_base", "[customer_id]")]


def test_reader_follows_each_publication_and_reuses_cursors(synthetic_settings):
    from customer360.serving.reader import ServingReader

    reader = ServingReader(synthetic_settings.serving_path)
    try:
        with reader.session() as (first, cur):
            assert cur.execute("select count(*) from customer_360").fetchone()[0] == 50
        with reader.session() as (copy, again):
            assert copy is first and again is cur  # the idle cursor is reused
        with duckdb.connect(str(synthetic_settings.warehouse)) as con:
            build_synthetic_warehouse(con, customers=60, batch=2)
            publish_serving_copy(con, synthetic_settings, force=True)
        with reader.session() as (second, cur2):
            assert second is not first and cur2 is not cur
            assert cur2.execute("select count(*) from customer_360").fetchone()[0] == 60
            assert second.publication[2] == 60
        with pytest.raises(duckdb.ConnectionException):
            cur.execute("select 1")  # the old copy's idle cursor was closed
    finally:
        reader.close()


def test_profile_lists_query_orders_each_list_as_its_own_order_by():
    """LISTS_SQL (the four lists in one query) keeps each list's order, ties and NULLs included."""
    import random

    from customer360.serving.api import LISTS_SQL

    rng = random.Random(6)
    at = [None, datetime(2026, 1, 1), datetime(2026, 1, 2), datetime(2026, 1, 2, 0, 0, 1)]
    with duckdb.connect() as con:
        con.execute(
            "create table customer_popular_items (customer_id bigint, product_name varchar,"
            " purchases bigint, last_purchased_at timestamp)"
        )
        con.execute(
            "create table customer_recent_errors (customer_id bigint, error_message varchar,"
            " page varchar, last_at timestamp, occurrences bigint)"
        )
        con.execute(
            "create table customer_purchase_stats (customer_id bigint, channel varchar,"
            " number_of_orders bigint, number_of_items_purchased bigint,"
            " items_per_order decimal(18, 2), amount_spent decimal(18, 2))"
        )
        con.execute(
            "create table customer_activity (customer_id bigint, event varchar, last_at timestamp)"
        )
        for i in range(40):
            con.execute(
                "insert into customer_popular_items values (7, ?, ?, ?)",
                [
                    rng.choice(["A", "b", "B", "Ä", "c"]) + str(i % 3),
                    rng.randint(1, 3),
                    rng.choice(at),
                ],
            )
            con.execute(
                "insert into customer_recent_errors values (7, ?, ?, ?, ?)",
                [
                    rng.choice([None, "Timeout", "timeout", "Payment failed"]),
                    rng.choice([None, "cart.html", "a.html"]),
                    rng.choice(at),
                    rng.choice([None, 1, 2]),
                ],
            )
        con.execute(
            "insert into customer_purchase_stats values"
            " (7, 'Instore', 1, 9, 9, 5), (7, 'Online', 3, 1, 0.33, 10), (8, 'Online', 1, 1, 1, 1)"
        )
        events = ["Email Sent", "Email Opened", "Online Order", "Website Visit", "Website Login"]
        for event in events:
            con.execute(
                "insert into customer_activity values (7, ?, ?)", [event, rng.choice(at[1:])]
            )
        products = con.execute(
            "select product_name, purchases, last_purchased_at from customer_popular_items"
            " where customer_id = 7"
            " order by purchases desc, last_purchased_at desc nulls last, product_name"
        ).fetchall()
        errors = con.execute(
            "select error_message, page, last_at, occurrences from customer_recent_errors"
            " where customer_id = 7"
            " order by last_at desc, occurrences desc, error_message, page nulls last"
        ).fetchall()
        activity = con.execute(
            "select event, last_at from customer_activity where customer_id = 7"
            " order by last_at desc, event desc"
        ).fetchall()
        both = con.execute(LISTS_SQL, [7]).fetchall()
    assert [(r[4], r[1], r[2]) for r in both if r[0] == 0] == products
    assert [(r[4], r[5], r[2], r[3]) for r in both if r[0] == 1] == errors
    assert [r[4] for r in both if r[0] == 2] == ["Online", "Instore"]
    assert [(r[4], r[2]) for r in both if r[0] == 3] == activity
