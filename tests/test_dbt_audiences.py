"""Consent and audiences, hand-checked, built incrementally and compared with a full refresh.

Dates are relative to today (UTC), since the shipped audiences are relative to `today`. D = today
at 00:00 UTC. Round 1:
- 1 Ann: consent granted at D-10; in-store orders of 200 and 150 at D-100 (lifetime value 350,
  last sale 100 days ago) -> at_risk_high_value (>= 300, no sale for 90 days, email consent
  granted). Not lapsed_instore_buyers (not 180 days).
- 2 Bob: the same orders, no consent in his document -> unknown -> in no email audience.
- 3 Cat: consent granted at D-10, then unsubscribes from an email at D-1 -> withdrawn since
  D-1; browsed at D-2, never bought -> would be browsed_never_bought, but has no consent.
- 4 Dan: consent withdrawn at D-20, then granted at D-5 (his document changed) -> granted since
  D-5; browsed at D-3, never bought -> browsed_never_bought.
- 5 Eve: no consent; an in-store order of 20 at D-200 -> lapsed_instore_buyers (channel none:
  no consent needed).
Round 2: Dan orders online (exits browsed_never_bought), Eve is deleted (exits
lapsed_instore_buyers), Bob grants consent at D-1 (enters at_risk_high_value).
So audience_changes: round 1 = 1 at_risk Ann, 2 browsed Dan, 3 lapsed Eve (ordered by audience
then customer); round 2 = 4 at_risk Bob entered, 5 browsed Dan exited, 6 lapsed Eve exited.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner

from customer360.config import Settings
from customer360.serving.publish import publish_serving_copy
from customer360.serving.server import BackgroundServer
from tests.dbt_fixtures.audience_history import append_minutely_entries
from tests.dbt_fixtures.dbt_invoke import DBT_DIR, run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding

D = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
RUN = ("run",)


def days_ago(n: float) -> dt.datetime:
    return D - dt.timedelta(days=n)


def consent(status: str, at: dt.datetime) -> dict:
    return {"email": {"status": status, "at": at}}


def members(path: Path) -> set[tuple[str, int]]:
    with duckdb.connect(str(path)) as con:
        return set(
            con.execute("select audience, customer_id from marts.customer_audiences").fetchall()
        )


def changes(path: Path) -> list[tuple]:
    with duckdb.connect(str(path)) as con:
        return con.execute(
            "select sequence, audience, customer_id, change from marts.audience_changes"
            " order by sequence"
        ).fetchall()


def consents(path: Path) -> list[tuple]:
    with duckdb.connect(str(path)) as con:
        return con.execute(
            "select customer_id, email_consent, email_consent_since, email_consent_source"
            " from marts.customer_consent order by 1"
        ).fetchall()


def eligible(path: Path) -> set[tuple[str, int]]:
    with duckdb.connect(str(path)) as con:
        return set(
            con.execute(
                "select audience, customer_id from intermediate.int_audience_eligibility"
            ).fetchall()
        )


def round_one(raw: RawLanding) -> None:
    raw.now = days_ago(0.5)
    raw.user("snapshot", 1, 1, first_name="Ann", consent=consent("granted", days_ago(10)))
    raw.user("snapshot", 2, 2, first_name="Bob")
    raw.user("snapshot", 3, 3, first_name="Cat", consent=consent("granted", days_ago(10)))
    raw.user("snapshot", 4, 4, first_name="Dan", consent=consent("withdrawn", days_ago(20)))
    raw.user("update", 4, 4, first_name="Dan", consent=consent("Granted", days_ago(5)))
    raw.user("snapshot", 5, 5, first_name="Eve")
    for customer, number in ((1, 11), (2, 21)):
        raw.order(
            "Instore", "insert", number, customer, days_ago(100), [("Coat", "Outerwear", 200, 1)]
        )
        raw.order(
            "Instore", "insert", number + 1, customer, days_ago(100), [("Boots", "Shoes", 150, 1)]
        )
    raw.order("Instore", "insert", 51, 5, days_ago(200), [("Scarf", "Accessories", 20, 1)])
    raw.weblog("w3", 3, days_ago(2), page="products.html")
    raw.weblog("w4", 4, days_ago(3), page="products.html")
    raw.email("m3", 3, days_ago(4))
    raw.email("m3", 3, days_ago(4), opened=True, unsubscribed=True, updated_at=days_ago(1))


def round_two(raw: RawLanding) -> None:
    raw.now = days_ago(0.25)
    raw.order("Online", "insert", 41, 4, days_ago(0.3), [("Hat", "Accessories", 30, 1)])
    raw.user("delete", 5, 5)
    raw.user("update", 2, 2, first_name="Bob", consent=consent("granted", days_ago(1)))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, object]:
    """Both rounds into two warehouses; `run` after each on one, --full-refresh on the other."""
    tmp = tmp_path_factory.mktemp("audiences")
    incremental, full = tmp / "inc" / "warehouse.duckdb", tmp / "full" / "warehouse.duckdb"
    incremental.parent.mkdir()
    full.parent.mkdir()
    raw = RawLanding([incremental, full])
    seen = {}
    for number, prepare in enumerate((round_one, round_two), start=1):
        prepare(raw)
        raw.land()
        run_dbt(incremental, *RUN, work_dir=tmp / "dbt-inc")
        run_dbt(full, "run", "--full-refresh", work_dir=tmp / "dbt-full")
        seen[number] = (members(incremental), changes(incremental), consents(incremental))
    return {"incremental": incremental, "full": full, "seen": seen, "tmp": tmp}


def test_consent_rule_hand_checked(built) -> None:
    _, _, round_one_consents = built["seen"][1]
    assert round_one_consents == [
        (1, "granted", days_ago(10).replace(tzinfo=None), "profile"),
        (2, "unknown", None, None),
        (3, "withdrawn", days_ago(1).replace(tzinfo=None), "unsubscribe"),
        (4, "granted", days_ago(5).replace(tzinfo=None), "profile"),
        (5, "unknown", None, None),
    ]
    assert consents(built["incremental"])[:2] == [
        (1, "granted", days_ago(10).replace(tzinfo=None), "profile"),
        (2, "granted", days_ago(1).replace(tzinfo=None), "profile"),
    ]


def test_audience_membership_and_changes_hand_checked(built) -> None:
    round_one_members, round_one_changes, _ = built["seen"][1]
    assert round_one_members == {
        ("at_risk_high_value", 1),
        ("browsed_never_bought", 4),
        ("lapsed_instore_buyers", 5),
    }
    assert round_one_changes == [
        (1, "at_risk_high_value", 1, "entered"),
        (2, "browsed_never_bought", 4, "entered"),
        (3, "lapsed_instore_buyers", 5, "entered"),
    ]
    assert changes(built["incremental"])[3:] == [
        (4, "at_risk_high_value", 2, "entered"),
        (5, "browsed_never_bought", 4, "exited"),
        (6, "lapsed_instore_buyers", 5, "exited"),
    ]
    assert members(built["incremental"]) == {("at_risk_high_value", 1), ("at_risk_high_value", 2)}


def test_email_audiences_only_hold_customers_with_granted_consent(built) -> None:
    with duckdb.connect(str(built["incremental"])) as con:
        without = con.execute(
            "select m.audience, m.customer_id, c.email_consent"
            " from marts.customer_audiences m"
            " join marts.audience_definitions d using (audience)"
            " join marts.customer_consent c on c.customer_id = m.customer_id"
            " where d.channel = 'email' and c.email_consent <> 'granted'"
        ).fetchall()
        email_members = con.execute(
            "select count(*) from marts.customer_audiences m"
            " join marts.audience_definitions d using (audience) where d.channel = 'email'"
        ).fetchone()[0]
    assert email_members == 2
    assert without == []


def test_incremental_equals_full_refresh(built) -> None:
    """customer_consent row for row; the membership folded from the history equals who
    qualifies now, in both warehouses; --full-refresh leaves a history as it was."""
    assert consents(built["incremental"]) == consents(built["full"])
    assert members(built["incremental"]) == members(built["full"]) == eligible(built["full"])
    history = changes(built["incremental"])
    run_dbt(built["incremental"], "run", "--full-refresh", work_dir=built["tmp"] / "dbt-inc")
    assert changes(built["incremental"]) == history
    assert consents(built["incremental"]) == consents(built["full"])


def serving_rows(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.serving_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_customer_evaluated_again_on_a_new_day(built) -> None:
    """A new day (the recorded evaluation day moved back) re-evaluates customers no data
    touched: a membership the history holds but the conditions no longer give is closed. The
    serving copy, published incrementally, gets the change though the customer's profile did
    not change (audience_changes is followed by its sequence)."""
    path = built["incremental"]
    settings = Settings(warehouse=path, serving_db=built["tmp"] / "serving" / "serving.duckdb")
    with duckdb.connect(str(path)) as con:
        con.execute(
            "insert into marts.audience_changes values"
            " ((select max(sequence) + 1 from marts.audience_changes), 'lapsed_instore_buyers',"
            " 3, 'entered', timestamp '2026-01-01')"
        )
        con.execute(
            "update intermediate.dbt_watermarks set batch_id = batch_id - 1"
            " where model = 'audience_changes' and source = 'audience_day'"
        )
        publish_serving_copy(con, settings)
    assert serving_rows(settings, "select count(*) from audience_changes") == [(7,)]
    assert set(serving_rows(settings, "select audience, customer_id from customer_audiences")) == (
        members(path)
    )
    assert [r[0] for r in serving_rows(settings, "select audience from audience_definitions")] == [
        "at_risk_high_value",
        "browsed_never_bought",
        "lapsed_instore_buyers",
        "checkout_errors_recent",
    ]
    run_dbt(path, "run", "--select", "audience_changes", work_dir=built["tmp"] / "dbt-inc")
    last = changes(path)[-1]
    assert last[1:] == ("lapsed_instore_buyers", 3, "exited")
    assert members(path) == eligible(path)
    with duckdb.connect(str(path)) as con:
        result = publish_serving_copy(con, settings)
    assert result.mode in ("incremental", "copy") and result.customers_replaced == 1, result
    assert serving_rows(
        settings,
        "select sequence, audience, customer_id, change from audience_changes"
        " order by sequence desc limit 1",
    ) == [last]


def test_unit_tests_of_consent_and_emails(built) -> None:
    run_dbt(
        built["full"],
        "test",
        "--select",
        "customer_consent,test_type:unit",
        "stg_marketing_emails,test_type:unit",
        work_dir=built["tmp"] / "dbt-full",
    )


def test_data_tests_of_the_new_models(built) -> None:
    run_dbt(
        built["full"],
        "test",
        "--select",
        "customer_consent audience_changes customer_audiences audience_definitions"
        " int_audience_eligibility",
        "--exclude-resource-type",
        "unit_test",
        work_dir=built["tmp"] / "dbt-full",
    )


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_api_serves_consent_and_audiences(built) -> None:
    """The profile's consent and audiences, the audiences with their sizes, an audience's
    members (paged, with entered_at) and its size over time, from the serving copy."""
    path = built["incremental"]
    settings = Settings(warehouse=path, serving_db=built["tmp"] / "api" / "serving.duckdb")
    with duckdb.connect(str(path)) as con:
        publish_serving_copy(con, settings, force=True)
        entered = dict(
            con.execute(
                "select customer_id, entered_at from marts.customer_audiences"
                " where audience = 'at_risk_high_value'"
            ).fetchall()
        )
    with BackgroundServer(settings, port=0) as server:
        status, profile = get(f"{server.url}/api/customers/2")
        assert status == 200
        assert profile["consent"] == {
            "email": {"status": "granted", "since": days_ago(1).isoformat().replace("+00:00", "Z")}
        }
        assert [a["audience"] for a in profile["audiences"]] == ["at_risk_high_value"]
        assert profile["audiences"][0]["channel"] == "email"
        status, profile = get(f"{server.url}/api/customers/3")
        assert profile["consent"]["email"]["status"] == "withdrawn"
        assert profile["audiences"] == []

        status, listing = get(f"{server.url}/api/audiences")
        assert status == 200
        sizes = {a["name"]: a["size"] for a in listing["items"]}
        assert sizes == {
            "at_risk_high_value": 2,
            "browsed_never_bought": 0,
            "checkout_errors_recent": 0,
            "lapsed_instore_buyers": 0,
        }
        status, page = get(f"{server.url}/api/audiences/at_risk_high_value/members?limit=1")
        assert status == 200 and page["total"] == 2 and len(page["items"]) == 1
        status, second = get(
            f"{server.url}/api/audiences/at_risk_high_value/members?limit=1&offset=1"
        )
        ids = [page["items"][0]["customer_id"], second["items"][0]["customer_id"]]
        assert sorted(ids) == [1, 2]
        for item in (page["items"][0], second["items"][0]):
            expected = entered[item["customer_id"]].isoformat() + "Z"
            assert item["entered_at"].rstrip("Z") == expected.rstrip("Z")

        status, history = get(f"{server.url}/api/audiences/lapsed_instore_buyers/history")
        assert status == 200 and history["size"] == 0
        assert history["points"][-1]["size"] == 0
        assert sum(p["entered"] for p in history["points"]) == 2  # Eve, and customer 3
        assert get(f"{server.url}/api/audiences/nope/members")[0] == 404
        assert get(f"{server.url}/api/audiences/Bad-Name/members")[0] == 422


def test_history_cut_to_its_last_minutes_says_where_it_starts(built) -> None:
    """lapsed_instore_buyers' history (a copy of the warehouse): Eve and customer 3 enter in
    round 1 and exit in round 2, then 600 customers enter, one a minute (appended): 601 or 602
    minutes with changes, more than the 500 served. The last 500 points hold sizes 101 to 600,
    `truncated` is true and `size_before` is 100, the size before the first point (a chart
    starting from 0 there draws a jump that never happened). at_risk_high_value's whole history
    (Ann, then Bob): not truncated, `size_before` 0."""
    warehouse = built["tmp"] / "history" / "warehouse.duckdb"
    warehouse.parent.mkdir()
    shutil.copy(built["incremental"], warehouse)
    append_minutely_entries(warehouse, "lapsed_instore_buyers", 600, first_customer=1001)
    settings = Settings(warehouse=warehouse, serving_db=warehouse.parent / "serving.duckdb")
    with duckdb.connect(str(warehouse)) as con:
        publish_serving_copy(con, settings, force=True)
    with BackgroundServer(settings, port=0) as server:
        status, cut = get(f"{server.url}/api/audiences/lapsed_instore_buyers/history")
        status_whole, whole = get(f"{server.url}/api/audiences/at_risk_high_value/history")
    assert status == 200 and cut["size"] == 600
    assert [p["size"] for p in cut["points"]] == list(range(101, 601))
    assert (cut["truncated"], cut["size_before"]) == (True, 100)
    assert status_whole == 200 and [p["size"] for p in whole["points"]][-1] == 2
    assert (whole["truncated"], whole["size_before"]) == (False, 0)


def landing(tmp_path: Path) -> tuple[RawLanding, Path, Path]:
    """Raw landing into two warehouses: one built incrementally, one by full refreshes."""
    incremental, full = (
        tmp_path / "inc" / "warehouse.duckdb",
        tmp_path / "full" / "warehouse.duckdb",
    )
    incremental.parent.mkdir()
    full.parent.mkdir()
    return RawLanding([incremental, full]), incremental, full


def test_an_unsubscribe_after_consent_granted_anew_withdraws_it(tmp_path) -> None:
    """Every unsubscribe record is a statement, not only an email's first. Customer 1: consent
    granted 2026-06-01 09:00; email m1 sent 10:00, unsubscribed 11:00 (batch 1); consent
    granted again 06-02 09:00 (batch 2); m1's unsubscribe link followed again 06-03 10:00
    (batch 3) -> withdrawn since 06-03 10:00 (unsubscribe), incrementally (m1's stored row
    merged with the new record) and by a full refresh."""
    raw, incremental, full = landing(tmp_path)
    at = lambda text: dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)  # noqa: E731
    raw.now = at("2026-06-01T08:00:00")
    raw.user("snapshot", 1, 1, consent=consent("granted", at("2026-06-01T09:00:00")))
    raw.email("m1", 1, at("2026-06-01T10:00:00"), updated_at=at("2026-06-01T11:00:00"),
              unsubscribed=True)  # fmt: skip
    raw.land()
    run_dbt(incremental, *RUN, work_dir=tmp_path / "dbt-inc")
    raw.now = at("2026-06-02T09:00:00")
    raw.user("update", 1, 1, consent=consent("granted", at("2026-06-02T09:00:00")))
    raw.land()
    run_dbt(incremental, *RUN, work_dir=tmp_path / "dbt-inc")
    assert consents(incremental) == [
        (1, "granted", at("2026-06-02T09:00:00").replace(tzinfo=None), "profile")
    ]
    raw.now = at("2026-06-03T10:00:00")
    raw.email("m1", 1, at("2026-06-01T10:00:00"), updated_at=at("2026-06-03T10:00:00"),
              unsubscribed=True)  # fmt: skip
    raw.land()
    run_dbt(incremental, *RUN, work_dir=tmp_path / "dbt-inc")
    run_dbt(full, "run", "--full-refresh", work_dir=tmp_path / "dbt-full")
    expected = [(1, "withdrawn", at("2026-06-03T10:00:00").replace(tzinfo=None), "unsubscribe")]
    assert consents(incremental) == consents(full) == expected


def test_spend_and_recency_count_sales_only(tmp_path) -> None:
    """at_risk_high_value and lapsed_instore_buyers read the traits (lifetime_value,
    days_since_last_order: sales only), not every order placed. All with email consent:
    - 6 Fay: an online order of 300 at D-100, refunded -> lifetime value 0, no sale: in no
      audience (total_amount_spent, which keeps it, is 300);
    - 7 Gus: an online sale of 300 at D-100 and an online order of 20 at D-5, cancelled -> his
      last sale is 100 days old: at_risk_high_value;
    - 8 Hal: an in-store order of 20 at D-200 and an online order at D-10, returned ->
      lapsed_instore_buyers;
    - 9 Ivy: the same, the online order delivered -> bought 10 days ago: not lapsed.
    Built incrementally (two batches) and by a full refresh: the same members."""
    raw, incremental, full = landing(tmp_path)
    raw.now = days_ago(0.5)
    for customer, name in ((6, "Fay"), (7, "Gus"), (8, "Hal"), (9, "Ivy")):
        raw.user(
            "snapshot",
            customer,
            customer,
            first_name=name,
            consent=consent("granted", days_ago(400)),
        )
    raw.order(
        "Online", "insert", 61, 6, days_ago(100), [("Coat", "Outerwear", 300, 1)], status="refunded"
    )
    raw.order("Online", "insert", 71, 7, days_ago(100), [("Coat", "Outerwear", 300, 1)])
    raw.land()
    run_dbt(incremental, *RUN, work_dir=tmp_path / "dbt-inc")
    raw.order(
        "Online", "insert", 72, 7, days_ago(5), [("Hat", "Accessories", 20, 1)], status="cancelled"
    )
    for customer, status in ((8, "returned"), (9, "delivered")):
        raw.order(
            "Instore",
            "insert",
            customer * 10 + 1,
            customer,
            days_ago(200),
            [("Scarf", "Accessories", 20, 1)],
        )
        raw.order(
            "Online",
            "insert",
            customer * 10 + 2,
            customer,
            days_ago(10),
            [("Hat", "Accessories", 30, 1)],
            status=status,
        )
    raw.land()
    run_dbt(incremental, *RUN, work_dir=tmp_path / "dbt-inc")
    run_dbt(full, "run", "--full-refresh", work_dir=tmp_path / "dbt-full")
    with duckdb.connect(str(incremental)) as con:
        fay = con.execute(
            "select total_amount_spent, lifetime_value from marts.customer_360"
            " where customer_id = 6"
        ).fetchone()
    assert fay == (300, 0)
    expected = {("at_risk_high_value", 7), ("lapsed_instore_buyers", 8)}
    assert members(incremental) == members(full) == eligible(incremental) == expected


@pytest.mark.parametrize(
    "condition",
    [
        "cast(last_website_visit_at as date) > cast(localtimestamp as date) - 30",
        "random() < 0.5",
        "age(last_website_visit_at) < interval 30 days",
        "last_website_visit_at > transaction_timestamp() - interval 1 day",
    ],
)
def test_a_condition_reading_the_clock_or_random_fails_the_build(tmp_path, condition) -> None:
    """A condition with a clock or random function of its own could give a full refresh other
    members than the incremental history: the build fails, naming the audience and the call."""
    project = tmp_path / "dbt"
    shutil.copytree(DBT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    definitions = project / "models" / "marts" / "audience_definitions.yml"
    text = definitions.read_text()
    anchor = "        audiences:\n"
    assert anchor in text
    definitions.write_text(
        text.replace(
            anchor,
            anchor + "          - name: clocked\n            description: x\n"
            "            channel: none\n            condition: " + json.dumps(condition) + "\n",
        )
    )
    previous = os.environ.get("C360_WAREHOUSE")
    os.environ["C360_WAREHOUSE"] = str(tmp_path / "warehouse.duckdb")
    try:
        result = dbtRunner().invoke(
            [
                "compile",
                "--select",
                "int_audience_eligibility",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project),
                "--quiet",
            ]
        )
    finally:
        if previous is None:
            os.environ.pop("C360_WAREHOUSE", None)
        else:
            os.environ["C360_WAREHOUSE"] = previous
    assert not result.success
    message = str(result.exception)
    assert "audience clocked" in message and "no clock or random function" in message, message


def lapsed_buyer(raw: RawLanding, customer: int) -> None:
    """A customer whose only order is in store, 200 days ago: in lapsed_instore_buyers."""
    raw.user("snapshot", customer, customer)
    raw.order("Instore", "insert", 100 + customer, customer, days_ago(200), [("S", "A", 20, 1)])


def build_and_publish(raw: RawLanding, warehouse: Path, settings: Settings, work: Path) -> None:
    raw.land()
    run_dbt(warehouse, *RUN, work_dir=work)
    with duckdb.connect(str(warehouse)) as con:
        publish_serving_copy(con, settings, force=True)


def members_page(url: str, after: str | None) -> tuple[list[int], str | None]:
    query = "limit=2" + ("" if after is None else f"&after={after}")
    status, page = get(f"{url}/api/audiences/lapsed_instore_buyers/members?{query}")
    assert status == 200, page
    return [m["customer_id"] for m in page["items"]], page["next"]


def test_members_followed_by_cursor_while_publications_happen(tmp_path) -> None:
    """Members are paged newest first by their entry's sequence; each page's `next`, passed
    as `after`, continues strictly after the page's last member, whatever was published
    between two pages. Build 1: customers 1-8 enter lapsed_instore_buyers (sequences 1-8:
    8, 7, ..., 1). Page 1: [8, 7]. Build 2: 9 enters; 8 (returned) and 5 (not yet) are deleted
    and exit; 7 (returned) buys in store today and exits. Page 2: [6, 4] (offset 2 gives [4, 3]
    of 9, 6, 4, 3, 2, 1: 6 skipped). Build 3: 7's order is deleted, so 7 enters again (a new,
    greater sequence), and 10 enters. Page 3: [3, 2] (offset 4 gives [4, 3] again), page 4: [1]
    and no `next`. So no member is returned twice (not 7), none present throughout (1-4, 6) is
    skipped, and members entering meanwhile come before the cursor, not on a later page."""
    warehouse = tmp_path / "warehouse.duckdb"
    raw = RawLanding([warehouse])
    settings = Settings(warehouse=warehouse, serving_db=tmp_path / "serving" / "serving.duckdb")
    raw.now = days_ago(0.5)
    for customer in range(1, 9):
        lapsed_buyer(raw, customer)
    build_and_publish(raw, warehouse, settings, tmp_path / "dbt")
    with BackgroundServer(settings, port=0) as server:
        pages = [members_page(server.url, None)]

        raw.now = days_ago(0.4)
        lapsed_buyer(raw, 9)
        raw.user("delete", 8, 8)
        raw.user("delete", 5, 5)
        raw.order("Instore", "insert", 207, 7, days_ago(0.45), [("S", "A", 20, 1)])
        build_and_publish(raw, warehouse, settings, tmp_path / "dbt")
        pages.append(members_page(server.url, pages[-1][1]))

        raw.now = days_ago(0.3)
        raw.order("Instore", "delete", 207, 7)
        lapsed_buyer(raw, 10)
        build_and_publish(raw, warehouse, settings, tmp_path / "dbt")
        while pages[-1][1] is not None:
            pages.append(members_page(server.url, pages[-1][1]))

        assert [ids for ids, _ in pages] == [[8, 7], [6, 4], [3, 2], [1]]
        # Read again from the start: the members now, 7 among the newest.
        fresh = [members_page(server.url, None)]
        while fresh[-1][1] is not None:
            fresh.append(members_page(server.url, fresh[-1][1]))
        assert [i for ids, _ in fresh for i in ids] == [10, 7, 9, 6, 4, 3, 2, 1]
