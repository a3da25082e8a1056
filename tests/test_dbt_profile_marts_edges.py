"""The five answers at their edges, hand-checked, incremental builds against a full refresh.
D = today at 00:00 UTC. Each customer is one case; every expected value is worked out in the
docstring of the test that checks it.

Round 1 (raw.now = D-10): users 1-15 (6 named 'Eleni ΠΑΠΑΔΟΠΟΥΛΟΣ', 7 'Zoë İnan' with the
email 'Zoe.Upper@Example.ORG', 8 born on 2000-02-29, 15 "born" on 2099-01-01 (a typo), 9
deleted in round 2, 11 deleted in round 3); orders:
- o101 online, 1, D-10: Coat 10 x 1, Hat 5 x 2 (round 2 drops the Hat line).
- o201 in store, 2, D-10: Scarf 20 x 1 (deleted in round 2, re-inserted in round 3 as Belt 15 x 1
  dated D-2); o202 in store, 2, D-10: Sock 3 x 1 (round 2: deleted, then re-inserted in the same
  batch as Glove 7 x 1 dated D-5).
- o301 online, 3: Tee 19.999 x 3, Cap 0.005 x 1; o302 online, 3: Pin 0.1 x 1, Clip 0.2 x 1;
  o303 / o304 online, 3: Bag 10 x 0 / Bag 10 x -1 (rejected: quantity not positive).
- o401 online, 4, D-5 10:00: 'beta' 1 x 1, 'Alpha' 1 x 1 (a tie).
- o901 online, 9.
Weblogs of 5: three logins (l1, l2, l3) at T5 = D-3 12:00, errors 'Timeout' on cart.html and on
a.html at T5. Errors on cart.html for the audience checkout_errors_recent ("latest error in
the last 7 days", i.e. on today or the 6 days before, on a cart or checkout page): 10, 11 and
12 at D-1, 14 at D-7 00:00 (a day too old), 15 at D-6 00:00 (the oldest day that counts).
Browser dev1: 21 logs in at T5 (event L-b), anonymous a0 at T5 (home.html) and a1 at T5 + 1 h
(error 'Oops' on pay.html).
Round 2 (raw.now = D-5): a fourth login l4 at T5, l1 again (a duplicate), and a cart error of
13 at D-1; 22 logs in on browser dev1 at T5 (L-a). Round 3 (raw.now = D-2): o201 re-inserted;
customer 11 deleted; 22 logs in on dev1 at T5 again (L-c).
Built with `run` after each round in one warehouse and `run --full-refresh` in another.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from customer360.config import Settings
from customer360.serving import audiences_api, publish_serving_copy
from customer360.serving.server import BackgroundServer
from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding

D = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
T5 = D - dt.timedelta(days=3) + dt.timedelta(hours=12)
HOUR = dt.timedelta(hours=1)


def days_ago(n: float) -> dt.datetime:
    return D - dt.timedelta(days=n)


def naive(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=None)


def round_one(raw: RawLanding) -> None:
    raw.now = days_ago(10)
    special = {
        6: {"first_name": "Eleni", "last_name": "ΠΑΠΑΔΟΠΟΥΛΟΣ"},
        7: {"first_name": "Zoë", "last_name": "İnan", "email": "Zoe.Upper@Example.ORG"},
        8: {"dob": "2000-02-29"},
        15: {"dob": "2099-01-01"},
    }
    for n in (*range(1, 16), 21, 22):
        raw.user("snapshot", n, n, **special.get(n, {}))
    raw.order("Online", "insert", 101, 1, days_ago(10),
              [("Coat", "Outerwear", 10, 1), ("Hat", "Acc", 5, 2)])  # fmt: skip
    raw.order("Instore", "insert", 201, 2, days_ago(10), [("Scarf", "Acc", 20, 1)])
    raw.order("Instore", "insert", 202, 2, days_ago(10), [("Sock", "Acc", 3, 1)])
    raw.order("Online", "insert", 301, 3, days_ago(10),
              [("Tee", "Tops", 19.999, 3), ("Cap", "Acc", 0.005, 1)])  # fmt: skip
    raw.order("Online", "insert", 302, 3, days_ago(10),
              [("Pin", "Acc", 0.1, 1), ("Clip", "Acc", 0.2, 1)])  # fmt: skip
    raw.order("Online", "insert", 303, 3, days_ago(10), [("Bag", "Acc", 10, 0)])
    raw.order("Online", "insert", 304, 3, days_ago(10), [("Bag", "Acc", 10, -1)])
    raw.order("Online", "insert", 401, 4, days_ago(5) + dt.timedelta(hours=10),
              [("beta", "Acc", 1, 1), ("Alpha", "Acc", 1, 1)])  # fmt: skip
    raw.order("Online", "insert", 901, 9, days_ago(10), [("Coat", "Outerwear", 10, 1)])
    for event_id in ("l1", "l2", "l3"):
        raw.weblog(event_id, 5, T5, page="login_success.html")
    raw.weblog("e1", 5, T5, page="cart.html", error_message="Timeout")
    raw.weblog("e2", 5, T5, page="a.html", error_message="Timeout")
    for customer, when in ((10, days_ago(1)), (11, days_ago(1)), (12, days_ago(1)),
                           (14, days_ago(7)), (15, days_ago(6))):  # fmt: skip
        raw.weblog(f"cart-{customer}", customer, when, page="cart.html", error_message="Declined")
    # A shared browser: 21 logs in at T5 (event L-b); anonymous events at T5 and T5 + 1 h.
    raw.weblog("L-b", 21, T5, page="login_success.html", anonymous_id="dev1")
    raw.weblog("a0", None, T5, page="home.html", anonymous_id="dev1")
    raw.weblog("a1", None, T5 + HOUR, page="pay.html", error_message="Oops", anonymous_id="dev1")


def round_two(raw: RawLanding) -> None:
    raw.now = days_ago(5)
    raw.order("Online", "update", 101, 1, days_ago(10), [("Coat", "Outerwear", 10, 1)])
    raw.order("Instore", "delete", 201)
    raw.order("Instore", "delete", 202)
    raw.tick(1)
    raw.order("Instore", "insert", 202, 2, days_ago(5), [("Glove", "Acc", 7, 1)])
    raw.user("delete", 9, 9)
    raw.weblog("l4", 5, T5, page="login_success.html")
    raw.weblog("l1", 5, T5, page="login_success.html", partition=1)
    raw.weblog("cart-13", 13, days_ago(1), page="cart.html", error_message="Declined")
    raw.weblog("L-a", 22, T5, page="login_success.html", anonymous_id="dev1")


def round_three(raw: RawLanding) -> None:
    raw.now = days_ago(2)
    raw.order("Instore", "insert", 201, 2, days_ago(2), [("Belt", "Acc", 15, 1)])
    raw.user("delete", 11, 11)
    raw.weblog("L-c", 22, T5, page="login_success.html", anonymous_id="dev1")


SHARED_BROWSER_SQL = """
select customer_id, 'activity' as part, event as what, last_at
from marts.customer_activity where customer_id in (21, 22)
union all
select customer_id, 'error', error_message || ' on ' || page, last_at
from marts.customer_recent_errors where customer_id in (21, 22)
order by all
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("mart-edges")
    incremental, full = tmp / "inc" / "warehouse.duckdb", tmp / "full" / "warehouse.duckdb"
    incremental.parent.mkdir()
    full.parent.mkdir()
    raw = RawLanding([incremental, full])
    as_of_by_round, shared_browser = [], []
    for prepare in (round_one, round_two, round_three):
        prepare(raw)
        raw.land()
        run_dbt(incremental, "run", work_dir=tmp / "dbt-inc")
        run_dbt(full, "run", "--full-refresh", work_dir=tmp / "dbt-full")
        as_of_by_round.append(
            dict(query(incremental, "select customer_id, as_of from marts.customer_360"))
        )
        shared_browser.append(
            {path.parent.name: query(path, SHARED_BROWSER_SQL) for path in (incremental, full)}
        )
    return {
        "incremental": incremental,
        "full": full,
        "tmp": tmp,
        "as_of": as_of_by_round,
        "shared_browser": shared_browser,
    }


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).fetchall()


def both(built, sql: str) -> list[tuple]:
    """The rows of `sql` on the incremental warehouse, after checking the full refresh agrees."""
    rows = query(built["incremental"], sql)
    assert query(built["full"], sql) == rows
    return rows


# -- the marts ---------------------------------------------------------------------------------


def test_an_order_whose_items_change_counts_its_latest_items(built) -> None:
    """o101 (customer 1) had Coat 10 x 1 and Hat 5 x 2; its update in round 2 keeps the Coat
    line only -> Online: 1 order, 1 line item, 1.00 per order, 10 spent; popular: COAT once
    (D-10); HAT is gone."""
    assert both(built, "select * from marts.customer_purchase_stats where customer_id = 1") == [
        (1, "Online", 1, 1, Decimal("1.00"), Decimal("10"))
    ]
    assert both(
        built,
        "select product_name, purchases, last_purchased_at from marts.customer_popular_items"
        " where customer_id = 1",
    ) == [("COAT", 1, naive(days_ago(10)))]


def test_an_order_deleted_then_inserted_again_counts_once_with_its_new_items(built) -> None:
    """Customer 2, in store: o201 (Scarf 20) deleted in round 2 and inserted again in round 3 as
    Belt 15 dated D-2; o202 (Sock 3) deleted and inserted again in the same batch as Glove 7
    dated D-5. -> 2 orders, 2 lines, 1.00 per order, 15 + 7 = 22 spent; popular BELT (D-2) and
    GLOVE (D-5), once each, no SCARF or SOCK; favourite BELT (a tie at one purchase, bought
    last); the last in-store order D-2."""
    assert both(built, "select * from marts.customer_purchase_stats where customer_id = 2") == [
        (2, "Instore", 2, 2, Decimal("1.00"), Decimal("22"))
    ]
    assert both(
        built,
        "select product_name, purchases, last_purchased_at from marts.customer_popular_items"
        " where customer_id = 2 order by product_name",
    ) == [("BELT", 1, naive(days_ago(2))), ("GLOVE", 1, naive(days_ago(5)))]
    assert both(
        built,
        "select favourite_product, favourite_product_purchases, last_instore_order_at"
        " from marts.customer_360 where customer_id = 2",
    ) == [("BELT", 1, naive(days_ago(2)))]


def test_fractional_prices_are_exact_and_non_positive_quantities_rejected(built) -> None:
    """Customer 3: o301 Tee 19.999 x 3 = 59.997 and Cap 0.005 x 1; o302 Pin 0.1 and Clip 0.2
    (JSON doubles, exact once typed as decimals); o303 (quantity 0) and o304 (quantity -1) are
    rejected whole. -> Online: 2 orders, 4 lines, 4 / 2 = 2.00 per order, 59.997 + 0.005 + 0.1
    + 0.2 = 60.302 exactly (not rounded to cents: the rule is an exact decimal); two rejected
    online orders."""
    assert both(built, "select * from marts.customer_purchase_stats where customer_id = 3") == [
        (3, "Online", 2, 4, Decimal("2.00"), Decimal("60.302"))
    ]
    assert (
        both(
            built,
            "select source, reason from staging.stg_rejected_records order by all",
        )
        == [("online_orders", "items are not valid line items")] * 2
    )


def test_ties_in_popular_items_are_broken_by_name(built) -> None:
    """Customer 4 bought 'beta' and 'Alpha' once each in one order (the same time) -> ALPHA
    (A-Z). Customer 3 bought four products once each at D-10 -> CAP, then CLIP, PIN, TEE."""
    assert both(
        built,
        "select customer_id, favourite_product, favourite_product_purchases"
        " from marts.customer_360 where customer_id in (3, 4) order by customer_id",
    ) == [(3, "CAP", 1), (4, "ALPHA", 1)]


def test_logins_and_errors_at_the_same_instant(built) -> None:
    """Customer 5: logins l1, l2, l3 at T5, l4 at T5 in round 2 and l1 again (a duplicate) ->
    4 login events, Website Login and Website Visit both at T5. Errors 'Timeout' on cart.html
    and on a.html, both at T5, once each -> two recent errors; the latest error is the tie
    broken by page A-Z: a.html."""
    assert both(
        built,
        "select events from intermediate.int_customer_weblog_rollup"
        " where customer_id = 5 and page = 'login_success.html'",
    ) == [(4,)]
    assert both(
        built,
        "select event, last_at from marts.customer_activity where customer_id = 5 order by event",
    ) == [("Website Login", naive(T5)), ("Website Visit", naive(T5))]
    assert both(
        built,
        "select error_message, page, last_at, occurrences from marts.customer_recent_errors"
        " where customer_id = 5 order by page",
    ) == [("Timeout", "a.html", naive(T5), 1), ("Timeout", "cart.html", naive(T5), 1)]
    assert both(
        built,
        "select latest_error_message, latest_error_page, latest_error_at"
        " from marts.customer_360 where customer_id = 5",
    ) == [("Timeout", "a.html", naive(T5))]


def test_a_customer_with_no_orders_and_no_events(built) -> None:
    """Customer 6 has a users document only (snapshot at D-10) -> one customer_360 row with
    0 orders, 0 items, 0 spent, no favourite, no activity time, no error, as_of D-10; no row in
    purchase stats, popular items, activity or recent errors."""
    assert both(
        built,
        "select total_orders, total_items_purchased, total_amount_spent, favourite_product,"
        " last_online_order_at, last_website_visit_at, latest_error_at, as_of"
        " from marts.customer_360 where customer_id = 6",
    ) == [(0, 0, Decimal("0"), None, None, None, None, naive(days_ago(10)))]
    for mart in ("purchase_stats", "popular_items", "activity", "recent_errors"):
        assert both(built, f"select * from marts.customer_{mart} where customer_id = 6") == []


def test_age_of_a_customer_born_on_29_february(built) -> None:
    """Customer 8, born 2000-02-29: on day R the age is R.year - 2000, less one before the
    birthday (before 1 March in a year without 29 February, i.e. (month, day) < (2, 29))."""
    (today,) = query(built["incremental"], "select cast(timezone('UTC', now()) as date)")[0]
    expected = today.year - 2000 - (1 if (today.month, today.day) < (2, 29) else 0)
    assert both(built, "select dob, age from marts.customer_details where customer_id = 8") == [
        (dt.date(2000, 2, 29), expected)
    ]


def test_a_date_of_birth_after_the_day_read_has_no_age(built) -> None:
    """Customer 15's dob 2099-01-01 (a typo) is after the day read: no whole years have passed
    since a birth that has not happened, so age is unknown (null), as for a dob that does not
    parse, in customer_details and customer_360; and their data tests (age non_negative)
    pass."""
    for view in ("customer_details", "customer_360"):
        assert both(built, f"select dob, age from marts.{view} where customer_id = 15") == [
            (dt.date(2099, 1, 1), None)
        ]
    run_dbt(
        built["incremental"],
        "test",
        "--select",
        "customer_details",
        "customer_360",
        "--exclude",
        "test_type:unit",
        work_dir=built["tmp"] / "dbt-inc",
    )


def test_deleted_customers_have_no_rows(built) -> None:
    """Customer 9 (with an order) was deleted in round 2, customer 11 in round 3 -> in no mart."""
    for mart in ("details", "360", "purchase_stats", "popular_items", "activity", "recent_errors"):
        assert (
            both(built, f"select * from marts.customer_{mart} where customer_id in (9, 11)") == []
        ), mart


def test_as_of_is_the_latest_source_time_and_never_goes_down(built) -> None:
    """as_of after each round: customer 1 D-10 (its snapshot and o101), then D-5 (o101's update);
    customer 2 D-10, then D-5 00:00:01 (o202 inserted again a second after its delete), then D-2
    (o201 inserted again); customer 5 T5 (its weblog events) throughout; customer 6 D-10."""
    rounds = built["as_of"]
    assert [r[1] for r in rounds] == [naive(days_ago(10)), naive(days_ago(5)), naive(days_ago(5))]
    assert [r[2] for r in rounds] == [
        naive(days_ago(10)),
        naive(days_ago(5) + dt.timedelta(seconds=1)),
        naive(days_ago(2)),
    ]
    assert [r[5] for r in rounds] == [naive(T5)] * 3
    assert [r[6] for r in rounds] == [naive(days_ago(10))] * 3
    for before, after in zip(rounds, rounds[1:], strict=False):
        assert all(after[c] >= at for c, at in before.items() if c in after)


def test_checkout_errors_audience_at_its_window_boundary(built) -> None:
    """checkout_errors_recent: the latest error on a cart or checkout page on today or the 6
    days before. Cart errors: 10, 11, 12 at D-1 (in), 13 at D-1 from round 2 (in), 14 at D-7
    00:00 (out: 7 days ago), 15 at D-6 00:00 (in); 11 deleted in round 3 (out) -> members
    10, 12, 13, 15, in both warehouses."""
    sql = (
        "select customer_id from marts.customer_audiences"
        " where audience = 'checkout_errors_recent' order by customer_id"
    )
    assert both(built, sql) == [(10,), (12,), (13,), (15,)]


def test_logins_at_the_same_instant_on_a_shared_browser(built) -> None:
    """dev1: an anonymous event belongs to the latest login at or before it, logins at the same
    instant ordered by event_id. Round 1: only L-b (21) -> a0 (T5) and a1 (T5 + 1 h) are 21's:
    21's Website Login T5, Website Visit T5 + 1 h, error 'Oops on pay.html' T5 + 1 h. Round 2:
    L-a (22) at T5 sorts before L-b -> nothing moves; 22 has its own login only (Login and
    Visit T5). Round 3: L-c (22) at T5 sorts after L-b -> a0 and a1 move to 22: 21 keeps its
    own login (Login and Visit T5), 22 gets Visit T5 + 1 h and the error. The same after a full
    refresh each round; 21's as_of stays T5 + 1 h (a moved event still counts for it)."""
    t5, later = naive(T5), naive(T5 + HOUR)
    own_21 = [(21, "activity", "Website Login", t5)]
    own_22 = [(22, "activity", "Website Login", t5), (22, "activity", "Website Visit", t5)]

    def with_events(customer: int, visit: dt.datetime) -> list[tuple]:
        return [
            (customer, "activity", "Website Login", t5),
            (customer, "activity", "Website Visit", visit),
            (customer, "error", "Oops on pay.html", later),
        ]

    expected = [
        with_events(21, later),
        sorted(with_events(21, later) + own_22),
        sorted([*own_21, (21, "activity", "Website Visit", t5)] + with_events(22, later)),
    ]
    for number, (rows, want) in enumerate(zip(built["shared_browser"], expected, strict=True)):
        assert rows["inc"] == rows["full"] == want, f"round {number + 1}"
    assert [r[21] for r in built["as_of"]] == [later] * 3


# -- the profile API over a serving copy of these marts ---------------------------------------

TOKEN = "edge-token-5b1e"


@pytest.fixture(scope="module")
def served(built):
    """The incremental warehouse (a copy), published, served with a token."""
    warehouse = built["tmp"] / "served" / "warehouse.duckdb"
    warehouse.parent.mkdir()
    shutil.copy(built["incremental"], warehouse)
    settings = Settings(warehouse=warehouse, api_token=TOKEN)
    with duckdb.connect(str(warehouse)) as con:
        publish_serving_copy(con, settings, force=True)
    with BackgroundServer(settings, port=0) as server:
        yield server.url


def get(url: str, token: str | None = TOKEN) -> tuple[int, str, dict]:
    """(status, content type, JSON body): every answer of the API, errors included, is JSON."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["content-type"], json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], json.loads(error.read())


def search(url: str, q: str, **params) -> dict:
    status, _, body = get(f"{url}/api/customers?{urllib.parse.urlencode({'q': q, **params})}")
    assert status == 200, body
    return body


def test_search_finds_a_name_or_email_typed_as_stored_or_in_another_case(served) -> None:
    """Names and emails compare case-insensitively the way the marts lower-case them. 6 is
    'Eleni ΠΑΠΑΔΟΠΟΥΛΟΣ', 7 'Zoë İnan' with the email 'Zoe.Upper@Example.ORG' (identity
    'zoe.upper@example.org'): each found by its name typed as stored, by another case, and 7 by
    its email with whitespace around it."""
    for q, customer in (
        ("İnan", 7), ("Zoë İnan", 7), ("zoë", 7), ("  ZOE.upper@example.org\t", 7),
        ("ΠΑΠΑΔΟΠΟΥΛΟΣ", 6), ("eleni παπαδοπουλοσ", 6),
    ):  # fmt: skip
        body = search(served, q)
        assert [item["customer_id"] for item in body["items"]] == [customer], q
        assert body["total"] == 1, q


def test_search_pages_keep_the_total_and_a_stable_order(served) -> None:
    """'example.com' is in the email of the 14 live customers but 7 (1-15 and 21, 22; without 7,
    and without 9 and 11, deleted): pages of 5 at offsets 0, 5, 10, 15 hold 1-6 | 8, 10, 12-14 |
    15, 21, 22 | nothing past the end, each saying total 14, the number of matches, also past
    the last page."""
    pages = [search(served, "example.com", limit=5, offset=o) for o in (0, 5, 10, 15)]
    assert [p["total"] for p in pages] == [14, 14, 14, 14]
    assert [len(p["items"]) for p in pages] == [5, 5, 4, 0]
    ids = [item["customer_id"] for p in pages for item in p["items"]]
    assert ids == [1, 2, 3, 4, 5, 6, 8, 10, 12, 13, 14, 15, 21, 22]
    assert search(served, "nobody-has-this")["total"] == 0


def test_search_by_a_digit_that_is_not_an_ascii_digit_is_no_error(served) -> None:
    """'²' and '٣' are digits to Python's str.isdigit() but no customer id; no name or email
    holds them -> 200, no matches (not a 500 from int('²'), nor customer 3 for '٣')."""
    for q in ("²", "٣", "1²"):
        body = search(served, q)
        assert (body["total"], body["items"]) == (0, []), q


def test_profile_of_unknown_deleted_or_malformed_ids(served) -> None:
    """Customers 9 and 11 were deleted, 99 never existed -> 404 naming the id; an id that is not
    an integer written in digits 0-9 after an optional `-` -> 422 naming the field (`+7`, `7 `,
    `7_0` and `7.0` are no customer 7 or 70, as int() and pydantic would read them); all JSON.
    `-1` is an id (staging reads user_id "-1" as customer -1): 404."""
    for customer in ("9", "11", "99", "-1"):
        status, kind, body = get(f"{served}/api/customers/{customer}")
        assert (status, kind) == (404, "application/json"), customer
        assert body["detail"] == f"no customer with id {customer}"
    bad_ids = ("%C3%A9", "%F0%9F%98%80", "--1", "1e3", "abc", "9223372036854775808", "%D9%A3")
    for bad in (*bad_ids, "%2B7", "7%20", "%207", "7_0", "7.0"):
        status, kind, body = get(f"{served}/api/customers/{bad}")
        assert (status, kind) == (422, "application/json"), bad
        assert body["detail"][0]["loc"] == ["path", "customer_id"]


def test_audience_members_paged_newest_first_by_entry(served) -> None:
    """checkout_errors_recent's members: 10, 12, 15 entered in round 1's build (sequences in
    customer order), 13 in round 2's (later), 11 entered and exited (deleted) -> newest entry
    first: 13 | 15, 12, 10. Pages of 2 by cursor: [13, 15] then [12, 10] and no `next`; by
    offset the same, and [] at offset 4; total 4 on each."""
    url = f"{served}/api/audiences/checkout_errors_recent/members"
    first = get(f"{url}?limit=2")[2]
    second = get(f"{url}?limit=2&after={first['next']}")[2]
    assert [[m["customer_id"] for m in p["items"]] for p in (first, second)] == [[13, 15], [12, 10]]
    assert second["next"] is None and second["after"] == first["next"]
    pages = [get(f"{url}?limit=2&offset={offset}")[2] for offset in (0, 2, 4)]
    assert [[m["customer_id"] for m in p["items"]] for p in pages] == [[13, 15], [12, 10], []]
    assert [p["total"] for p in (first, second, *pages)] == [4, 4, 4, 4, 4]
    status, _, audiences = get(f"{served}/api/audiences")
    sizes = {a["name"]: a["size"] for a in audiences["items"]}
    assert status == 200 and sizes["checkout_errors_recent"] == 4


def test_audience_members_bad_paging_and_unknown_audience(served) -> None:
    """limit 0, -1, 101 or 'ten', offset -1, a cursor that is not 1 to 18 digits 0-9 (empty,
    negative, signed, decimal, text, 19 digits), or a cursor with an offset -> 422 naming the
    field; an unknown or malformed audience name -> 404 / 422; all JSON."""
    url = f"{served}/api/audiences/checkout_errors_recent/members"
    for query_string, field in (
        ("limit=0", "limit"), ("limit=-1", "limit"), ("limit=101", "limit"),
        ("limit=ten", "limit"), ("offset=-1", "offset"), ("offset=x", "offset"),
        ("after=", "after"), ("after=-1", "after"), ("after=%2B7", "after"),
        ("after=7.0", "after"), ("after=abc", "after"), ("after=%D9%A3", "after"),
        ("after=1234567890123456789", "after"), ("after=7&offset=0", "offset"),
    ):  # fmt: skip
        status, kind, body = get(f"{url}?{query_string}")
        assert (status, kind) == (422, "application/json"), query_string
        assert body["detail"][0]["loc"] == ["query", field]
    status, kind, body = get(f"{served}/api/audiences/no_such_audience/members")
    assert (status, kind, body) == (
        404, "application/json", {"detail": "no audience named no_such_audience"}
    )  # fmt: skip
    assert get(f"{served}/api/audiences/%C3%A9t%C3%A9/members")[0] == 422


def test_token_missing_wrong_or_right_and_never_logged(served, caplog) -> None:
    """Without the token or with a wrong one: 401 JSON saying what to send; with it: 200. The
    log holds route templates and statuses, never the token, a name searched for or an id."""
    caplog.set_level(logging.INFO, logger="customer360.serving.api")
    for token in (None, "wrong", TOKEN[:-1], TOKEN + "x"):
        status, kind, body = get(f"{served}/api/customers/7", token=token)
        assert (status, kind) == (401, "application/json"), token
        assert "Bearer" in body["detail"]
    assert get(f"{served}/api/customers/7")[0] == 200
    search(served, "İnan")
    search(served, "²")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /api/customers/{customer_id} 401" in logged
    for secret in (TOKEN, "İnan", "²", "/api/customers/7"):
        assert secret not in logged


def test_an_unexpected_failure_is_a_json_500_that_logs_no_value(served, monkeypatch, caplog):
    """A profile whose assembly fails (here its audiences part raises with a value of the
    request in its message) -> 500 with a JSON `detail`, like every other error; the log names
    the route and the exception's type, not its message."""

    def broken(cur, customer_id, row):
        raise RuntimeError(f"could not read {row['email']}")

    caplog.set_level(logging.INFO, logger="customer360.serving.api")
    monkeypatch.setattr(audiences_api, "profile_parts", broken)
    status, kind, body = get(f"{served}/api/customers/7")
    assert (status, kind) == (500, "application/json")
    assert "RuntimeError" in body["detail"] and "zoe" not in body["detail"].lower()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /api/customers/{customer_id} failed: RuntimeError" in logged
    assert "zoe" not in logged.lower()


def test_unit_tests_of_customer_details(built) -> None:
    """The age rule's unit tests (customer_details.yml): birthdays, 29 February, a dob after the
    day read."""
    run_dbt(
        built["full"],
        "test",
        "--select",
        "customer_details,test_type:unit",
        work_dir=built["tmp"] / "dbt-full",
    )


def test_a_customer_with_a_negative_id_has_a_profile(tmp_path: Path) -> None:
    """Staging reads user_id -5 (or "-5") as customer -5 (macro json_integer), so the marts hold
    customer -5: search lists it and its profile answers, as for any customer."""
    warehouse = tmp_path / "warehouse.duckdb"
    raw = RawLanding([warehouse])
    raw.user("snapshot", 1, -5)
    raw.order("Online", "insert", 11, "-5", items=[("Coat", "Outerwear", 10, 1)])
    raw.land()
    run_dbt(warehouse, "run", work_dir=tmp_path)
    settings = Settings(warehouse=warehouse, api_token=TOKEN)
    with duckdb.connect(str(warehouse)) as con:
        publish_serving_copy(con, settings, force=True)
    with BackgroundServer(settings, port=0) as server:
        status, _, body = get(f"{server.url}/api/customers?q=-5")
        assert status == 200 and [i["customer_id"] for i in body["items"]] == [-5]
        status, _, profile = get(f"{server.url}/api/customers/-5")
        assert status == 200 and profile["totals"]["total_orders"] == 1, profile
