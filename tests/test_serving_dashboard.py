"""The dashboard in a real headless Chromium, driven over the DevTools protocol.

Seeds customers with the generator (identity stitching on: anonymous browsing, guest till
sales), lands and builds them with a micro-batch, publishes, finds a customer through the search
box and checks what each card shows against the serving copy's marts: details, purchases, value
and segment, consent and audiences, identities, and no propensity before a model is trained.
Then a propensity model is stored (as the nightly training stores one), a new weblog error and
an email change for that customer are landed, and one micro-batch builds and publishes them: the
page shows, without a reload, the error, the audience it puts the customer in, the new email
beside the former one, and the model's score with its reasons; the former email still finds the
customer through the search box; the audiences panel shows each audience's size, the picked
one's size over time and its members. Leaves a screenshot in docs/dashboard.png. A second
test, without Mongo or Kafka, charts an audience whose history the API cut to its latest
minutes: the chart starts at the size before them, not at 0.

Chromium comes from Debian's `chromium` package (`make test` installs it when missing).
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import shutil
import subprocess
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from websockets.sync.client import connect

from customer360.config import Settings
from customer360.generator.history import seed
from customer360.pipeline import MicroBatch
from customer360.propensity.model import store
from customer360.serving import publish_serving_copy
from customer360.serving.server import BackgroundServer
from tests.dbt_fixtures.audience_history import append_minutely_entries
from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.propensity_model import hand_trained_model
from tests.dbt_fixtures.raw_builder import RawLanding
from tests.extractor_helpers import mongo_db, produce, weblog

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "dashboard.png"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,1000",
)


class Page:
    """The few DevTools protocol calls the test needs, over one page's websocket."""

    def __init__(self, websocket_url: str):
        self.ws = connect(websocket_url, max_size=None, open_timeout=10, legacy=True)
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0, what: str = ""):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        body = self.evaluate("document.body.innerText")
        raise AssertionError(f"timed out waiting for {what or expression}; page shows:\n{body}")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def browser(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is needed: `make test` installs it (apt-get install chromium)"
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert process.poll() is None, "Chromium exited at start"
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.loads(r.read())
        page = Page(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
        page.call("Page.enable")
        page.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield page
        page.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def run_until_caught_up(batch: MicroBatch) -> None:
    for _ in range(20):
        result = batch.run()
        assert result.success, result.summary_lines()
        if result.records == 0:
            return
    raise AssertionError("micro-batches did not catch up")


def money(value) -> str:
    return f"{float(value):,.2f}"


def shown(value) -> str:
    """A mart value as the dashboard shows it (dashboard.js: text, when)."""
    if value is None:
        return "\u2013"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def wait_equal(page: Page, expression: str, expected, what: str, timeout: float = 15.0):
    """Wait until the page's `expression` equals `expected` (the page refreshes itself)."""
    deadline = time.monotonic() + timeout
    while True:
        actual = page.evaluate(expression)
        if actual == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the page shows\n{actual}\nexpected\n{expected}")
        time.sleep(0.2)


def text_of(element_id: str) -> str:
    return f"document.getElementById('{element_id}').textContent"


def table_cells(tbody_id: str) -> str:
    return (
        f"[...document.querySelectorAll('#{tbody_id} tr')]"
        ".map((r) => [...r.cells].map((c) => c.textContent))"
    )


def dl_pairs(dl_id: str) -> str:
    return (
        f"[...document.querySelectorAll('#{dl_id} dt')]"
        ".map((dt) => [dt.textContent, dt.nextElementSibling.textContent])"
    )


def list_items(list_id: str) -> str:
    return f"[...document.querySelectorAll('#{list_id} li')].map((li) => li.textContent)"


def profile_row(con, customer_id: int) -> dict:
    cursor = con.execute("select * from customer_360 where customer_id = ?", [customer_id])
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def expected_traits(row: dict) -> list[list[str]]:
    """The "Value and segment" card's pairs, from the customer's customer_360 row (its traits
    are customer_traits' columns)."""
    scores = (
        "\u2013"
        if row["recency_score"] is None
        else f"R{row['recency_score']} F{row['frequency_score']} M{row['monetary_score']}"
    )
    orders = " / ".join(shown(row[f"orders_last_{n}_days"]) for n in (30, 90, 365))
    return [
        ["Lifetime value", money(row["lifetime_value"])],
        ["Average order", money(row["average_order_value"])],
        ["Orders 30 / 90 / 365 days", orders],
        ["Days since last order", shown(row["days_since_last_order"])],
        ["First order", shown(row["first_order_date"])],
        ["Preferred channel", shown(row["preferred_channel"])],
        ["Preferred category", shown(row["preferred_category"])],
        ["RFM scores", scores],
    ]


def expected_consent(row: dict) -> str:
    status = row["email_consent"] or "unknown"
    since = f" since {shown(row['email_consent_since'])}" if row["email_consent_since"] else ""
    return f"Email: {status}{since}"


IDENTITY_KINDS = {"customer_id": "Customer id", "email": "Email", "anonymous_id": "Browser"}


def expected_identities(con, customer_id: int, current_email: str) -> list[list[str]]:
    """The "Identities" card's rows, from customer_identities: the customer id, then emails
    (the current one marked), then browsers; by identifier within a kind."""
    rows = con.execute(
        "select identifier_type, identifier, first_seen_at, last_seen_at"
        " from customer_identities where customer_id = ? order by identifier",
        [customer_id],
    ).fetchall()
    rows.sort(key=lambda r: list(IDENTITY_KINDS).index(r[0]))
    current = current_email.strip().lower()
    return [
        [
            IDENTITY_KINDS[kind],
            identifier + ("current" if kind == "email" and identifier == current else ""),
            shown(first),
            shown(last),
        ]
        for kind, identifier, first, last in rows
    ]


def expected_customer_audiences(con, customer_id: int) -> list[str]:
    rows = con.execute(
        "select m.audience, d.channel, m.entered_at from customer_audiences m"
        " join audience_definitions d using (audience)"
        " where m.customer_id = ? order by m.audience",
        [customer_id],
    ).fetchall()
    return [
        f"{audience} ({'no consent needed' if channel == 'none' else channel})"
        f" since {shown(entered_at)}"
        for audience, channel, entered_at in rows
    ] or ["In no audience"]


# A small explainable model, as the nightly training stores one: more orders and spend and
# recent visits raise the score, staleness lowers it.
MODEL = {  # feature: (mean, scale, coefficient)
    "days_since_last_order": (15.0, 10.0, -0.9),
    "log_orders": (0.7, 0.6, 0.8),
    "log_spend": (2.5, 2.0, 0.3),
    "log_tenure_days": (5.0, 1.0, -0.2),
    "days_since_last_visit": (15.0, 10.0, -0.6),
    "days_since_last_email_open": (20.0, 10.0, -0.1),
}


def store_model(con, reference_at: datetime) -> str:
    version = f"{reference_at:%Y%m%dT%H%M%S}"
    store(con, hand_trained_model(version, MODEL, intercept=-1.0, reference_at=reference_at))
    return version


def open_by_search(browser: Page, query: str, customer_id: int) -> None:
    """Type `query` into the search box and open the customer from what it finds."""
    browser.evaluate(
        "currentId = null; document.getElementById('profile').hidden = true;"
        f"document.getElementById('search').value = {json.dumps(query)};"
        "document.querySelector('#search-form button').click(); true"
    )
    # One match opens the customer; several list them: pick ours.
    browser.wait_for(
        f"String(currentId) === '{customer_id}'"
        f" || !!document.querySelector('#results li[data-id=\"{customer_id}\"]')",
        what=f"search results for {query}",
    )
    browser.evaluate(
        f"(document.querySelector('#results li[data-id=\"{customer_id}\"]') || "
        "{click() {}}).click(); true"
    )
    browser.wait_for(
        f"String(currentId) === '{customer_id}' && !document.getElementById('profile').hidden"
        f" && document.getElementById('details').innerText.includes('{customer_id}')",
        what="the customer's profile",
    )


def test_dashboard_search_numbers_and_live_error(isolated_settings, browser):
    settings = isolated_settings
    seed(settings, customers=25, days=30, seed=36, identity=True)
    with MicroBatch(settings) as batch:
        run_until_caught_up(batch)
        publish_serving_copy(batch.con, settings)
        with duckdb.connect(str(settings.serving_path), read_only=True) as con:
            # A customer who browsed anonymously before logging in: the best spender, in both
            # channels if anyone bought in both (which customers did depends on the generator's
            # draws, not on this test).
            found = con.execute(
                "select customer_id, email, first_name || ' ' || last_name, total_orders,"
                " total_amount_spent, online_amount_spent from customer_360"
                " where total_orders > 0 and customer_id in"
                " (select customer_id from customer_identities"
                " where identifier_type = 'anonymous_id')"
                " order by online_orders > 0 and instore_orders > 0 desc,"
                " total_amount_spent desc limit 1"
            ).fetchone()
            assert found, "no customer with orders browsed anonymously in the seeded history"
            customer_id, email, name, total_orders, total_spent, online_spent = found
            row = profile_row(con, customer_id)
            identities = expected_identities(con, customer_id, email)
            audiences = expected_customer_audiences(con, customer_id)
            assert con.execute("select count(*) from customer_propensity").fetchone() == (0,)
        assert [kind for kind, *_ in identities].count("Browser") >= 1, identities

        with BackgroundServer(settings, port=0) as server:
            browser.call("Page.navigate", url=f"{server.url}/")
            browser.wait_for("document.readyState === 'complete' && !!window.fetch", what="page")
            browser.wait_for(
                "document.getElementById('freshness').textContent.includes('ago')",
                what="the data-as-of line",
            )
            open_by_search(browser, email, customer_id)
            details = browser.evaluate("document.getElementById('details').innerText")
            assert name in details and email in details, details
            stats = browser.evaluate("document.getElementById('stats-card').innerText")
            assert money(total_spent) in stats and money(online_spent) in stats, stats
            assert str(total_orders) in stats
            assert browser.evaluate("document.querySelectorAll('#stats-chart svg rect').length")
            assert browser.evaluate("document.querySelectorAll('#activity li').length") > 0
            # Value and segment, consent, audiences and identities: each as the marts have it.
            wait_equal(
                browser,
                "[...document.querySelectorAll('#segment .badge')].map((b) => b.textContent)",
                [row["rfm_segment"] or "No orders", shown(row["lifecycle_stage"])],
                "the segment and lifecycle stage",
            )
            wait_equal(browser, dl_pairs("traits"), expected_traits(row), "the traits")
            wait_equal(
                browser,
                text_of("consent"),
                expected_consent(row),
                "the email consent",
            )
            wait_equal(browser, list_items("customer-audiences"), audiences, "the audiences")
            wait_equal(browser, table_cells("identities"), identities, "the identities")
            emails = sum(kind == "Email" for kind, *_ in identities)
            browsers = sum(kind == "Browser" for kind, *_ in identities)
            assert browser.evaluate(text_of("identities-summary")) == (
                f"{emails} email{'s' * (emails != 1)} \u00b7 "
                f"{browsers} browser{'s' * (browsers != 1)} (anonymous ids)"
            )
            # No model trained yet: no score.
            assert browser.evaluate(text_of("propensity-model")) == "No model trained yet"
            assert "data as of" in browser.evaluate(
                "document.getElementById('freshness').textContent"
            )

            # The nightly training stores a model; then a new error and an email change land for
            # this customer; one micro-batch builds (scoring every customer with the new model)
            # and publishes. The page follows without a reload.
            browser.evaluate("window.notReloaded = true")
            version = store_model(batch.con, datetime.now(UTC).replace(tzinfo=None))
            error = f"Card declined {datetime.now(UTC):%H%M%S}"
            produce(
                settings,
                "weblogs",
                [
                    json.dumps(
                        weblog(
                            customer_id,
                            date=datetime.now(UTC).isoformat(),
                            page="checkout.html",
                            error_message=error,
                        )
                    )
                ],
            )
            new_email = f"moved.{customer_id}@example.org"
            changed = mongo_db(settings).users.update_one(
                {"id": customer_id},
                {"$set": {"email": new_email, "updated_at": datetime.now(UTC)}},
            )
            assert changed.modified_count == 1
            result = batch.run()
            assert result.success and result.records == 2, result.summary_lines()
            # MicroBatch.publish may have published already; then this finds nothing new.
            publish_serving_copy(batch.con, settings)
            browser.wait_for(
                f"document.getElementById('errors').innerText.includes({json.dumps(error)})",
                timeout=15,
                what="the new error on the page",
            )
            assert browser.evaluate("window.notReloaded === true")
            assert "checkout.html" in browser.evaluate(
                "document.getElementById('errors').rows[0].innerText"
            )

            with duckdb.connect(str(settings.serving_path), read_only=True) as con:
                row = profile_row(con, customer_id)
                identities = expected_identities(con, customer_id, new_email)
                audiences = expected_customer_audiences(con, customer_id)
                score, model_version, scored_as_of, *reasons = con.execute(
                    "select propensity_score, model_version, scored_as_of,"
                    " reason_1, reason_2, reason_3"
                    " from customer_propensity where customer_id = ?",
                    [customer_id],
                ).fetchone()
                panel = [
                    [name, channel, str(size), description]
                    for name, channel, size, description in con.execute(
                        "select d.audience, d.channel, count(m.customer_id), d.description"
                        " from audience_definitions d left join customer_audiences m"
                        " using (audience) group by all order by d.audience"
                    ).fetchall()
                ]
                members = [
                    [f"#{member}", f"{first} {last}", shown(entered_at)]
                    for member, first, last, entered_at in con.execute(
                        "select m.customer_id, c.first_name, c.last_name, m.entered_at"
                        " from customer_audiences m join customer_360 c using (customer_id)"
                        " where m.audience = 'checkout_errors_recent'"
                        " order by m.entered_sequence desc limit 10"  # newest entry first
                    ).fetchall()
                ]
            assert row["email"] == new_email and model_version == version

            # The new email beside the former one, which still finds the customer.
            emails = [identifier for kind, identifier, *_ in identities if kind == "Email"]
            assert email.strip().lower() in emails and f"{new_email}current" in emails, emails
            wait_equal(browser, table_cells("identities"), identities, "the identities")
            open_by_search(browser, email, customer_id)
            assert new_email in browser.evaluate("document.getElementById('details').innerText")

            # The model's score and reasons, as customer_propensity computed them.
            wait_equal(
                browser,
                text_of("propensity-score"),
                f"{math.floor(score * 100 + 0.5)} % chance of an order in the next 30 days",
                "the propensity score",
            )
            reasons = [reason for reason in reasons if reason is not None]
            assert reasons, "the model should give this customer reasons"
            assert browser.evaluate(list_items("propensity-reasons")) == reasons
            model_line = f"model {version}, as of {shown(scored_as_of)}"
            assert browser.evaluate(text_of("propensity-model")) == model_line

            # The checkout error puts the customer in checkout_errors_recent (latest error on the
            # checkout, this week): the profile lists it with when it entered, the audiences
            # panel counts and charts it, and lists the customer among its members.
            assert any(a.startswith("checkout_errors_recent ") for a in audiences), audiences
            wait_equal(browser, list_items("customer-audiences"), audiences, "the audiences")
            wait_equal(browser, dl_pairs("traits"), expected_traits(row), "the traits")
            assert browser.evaluate(text_of("consent")) == expected_consent(row)
            wait_equal(browser, table_cells("audiences"), panel, "the audiences panel")
            assert len(panel) == 4
            browser.evaluate(
                "document.querySelector('#audiences tr[data-name=\"checkout_errors_recent\"]')"
                ".click(); true"
            )
            size = next(int(size) for name, _, size, _ in panel if name == "checkout_errors_recent")
            wait_equal(
                browser,
                text_of("audience-title"),
                f"checkout_errors_recent: {size} member{'s' * (size != 1)}",
                "the picked audience's size",
            )
            wait_equal(browser, table_cells("audience-members"), members, "its members")
            assert any(m[0] == f"#{customer_id}" for m in members)
            assert browser.evaluate("!!document.querySelector('#audience-chart svg path')")
            shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))


# The chart's path as numbers, and the y of its axis labels "0" and the maximum (drawn 4 below
# the y of their value): where the path starts, on the chart's own scale.
CHART_GEOMETRY = """(() => {
  const svg = document.querySelector('#audience-chart svg');
  const labels = [...svg.querySelectorAll('text')]
    .map((t) => [t.textContent, +t.getAttribute('y')]);
  const start = svg.querySelector('path').getAttribute('d').split(' ').slice(1, 3).map(Number);
  return {start, zero: labels[1][1] - 4, max: +labels[0][0], top: labels[0][1] - 4};
})()"""


def test_a_cut_size_history_starts_at_the_size_before_it(tmp_path, browser):
    """An audience with more minutes of changes than the API serves (a lapsed in-store buyer
    built by dbt, then 600 entries appended one a minute): the chart starts at the size before
    the first point served (`size_before`), not at 0, which drew a jump that never happened."""
    warehouse = tmp_path / "warehouse.duckdb"
    raw = RawLanding([warehouse])
    raw.now = datetime.now(UTC) - timedelta(hours=12)
    raw.user("snapshot", 1, 1)
    raw.order("Instore", "insert", 1, 1, raw.now - timedelta(days=200), [("S", "A", 20, 1)])
    raw.land()
    run_dbt(warehouse, "run", work_dir=tmp_path / "dbt")
    append_minutely_entries(warehouse, "lapsed_instore_buyers", 600, first_customer=1001)
    settings = Settings(warehouse=warehouse, serving_db=tmp_path / "serving" / "serving.duckdb")
    with duckdb.connect(str(warehouse)) as con:
        publish_serving_copy(con, settings, force=True)
    with BackgroundServer(settings, port=0) as server:
        with urllib.request.urlopen(
            f"{server.url}/api/audiences/lapsed_instore_buyers/history"
        ) as r:
            history = json.loads(r.read())
        assert history["truncated"] and history["size_before"] > 0, history["size_before"]
        browser.call("Page.navigate", url=f"{server.url}/")
        row = '#audiences tr[data-name="lapsed_instore_buyers"]'
        browser.wait_for(f"!!document.querySelector('{row}')", what="the audiences panel")
        browser.evaluate(f"document.querySelector('{row}').click(); true")
        browser.wait_for("!!document.querySelector('#audience-chart svg path')", what="the chart")
        chart = browser.evaluate(CHART_GEOMETRY)
    size_before, sizes = history["size_before"], [p["size"] for p in history["points"]]
    assert chart["max"] == max(sizes)
    expected = chart["zero"] + (chart["top"] - chart["zero"]) * size_before / chart["max"]
    assert chart["start"][1] == pytest.approx(expected), chart
