"""The dashboard in a real headless Chromium, driven over the DevTools protocol.

Seeds customers with the generator, lands and builds them with a micro-batch, publishes, finds a
customer through the search box and checks the numbers shown; then lands a new weblog error for
that customer, runs a micro-batch and publishes, and waits for the error to appear on the page
without a reload. Leaves a screenshot in docs/dashboard.png.

Chromium comes from Debian's `chromium` package (`make test` installs it when missing).
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from websockets.sync.client import connect

from customer360.generator.history import seed
from customer360.pipeline import MicroBatch
from customer360.serving import publish_serving_copy
from customer360.serving.server import BackgroundServer
from tests.extractor_helpers import produce, weblog

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


def test_dashboard_search_numbers_and_live_error(isolated_settings, browser):
    settings = isolated_settings
    seed(settings, customers=25, days=30, seed=11)
    with MicroBatch(settings) as batch:
        run_until_caught_up(batch)
        publish_serving_copy(batch.con, settings)
        with duckdb.connect(str(settings.serving_path), read_only=True) as con:
            customer_id, email, name, total_orders, total_spent, online_spent = con.execute(
                "select customer_id, email, first_name || ' ' || last_name, total_orders,"
                " total_amount_spent, online_amount_spent from customer_360"
                " where online_orders > 0 order by total_amount_spent desc limit 1"
            ).fetchone()
            segment, stage, value, category = con.execute(
                "select rfm_segment, lifecycle_stage, lifetime_value, preferred_category"
                " from customer_traits where customer_id = ?",
                [customer_id],
            ).fetchone()

        with BackgroundServer(settings, port=0) as server:
            browser.call("Page.navigate", url=f"{server.url}/")
            browser.wait_for("document.readyState === 'complete' && !!window.fetch", what="page")
            browser.wait_for(
                "document.getElementById('freshness').textContent.includes('ago')",
                what="the data-as-of line",
            )
            browser.evaluate(
                f"document.getElementById('search').value = {json.dumps(email)};"
                "document.querySelector('#search-form button').click(); true"
            )
            # One match opens the customer; several list them: pick ours.
            browser.wait_for(
                f"!document.getElementById('profile').hidden"
                f" || !!document.querySelector('#results li[data-id=\"{customer_id}\"]')",
                what="search results",
            )
            browser.evaluate(
                f"(document.querySelector('#results li[data-id=\"{customer_id}\"]') || "
                "{click() {}}).click(); true"
            )
            browser.wait_for(
                f"document.getElementById('details').innerText.includes({json.dumps(email)})",
                what="the customer's details",
            )
            details = browser.evaluate("document.getElementById('details').innerText")
            assert name in details and str(customer_id) in details
            stats = browser.evaluate("document.getElementById('stats-card').innerText")
            assert money(total_spent) in stats and money(online_spent) in stats, stats
            assert str(total_orders) in stats
            assert browser.evaluate("document.querySelectorAll('#stats-chart svg rect').length")
            assert browser.evaluate("document.querySelectorAll('#activity li').length") > 0
            traits = browser.evaluate("document.getElementById('traits-card').innerText")
            for shown in (segment, stage, money(value), category):
                assert shown in traits, (shown, traits)
            assert "data as of" in browser.evaluate(
                "document.getElementById('freshness').textContent"
            )

            # A new error for this customer: land it, micro-batch, publish; no reload.
            browser.evaluate("window.notReloaded = true")
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
            result = batch.run()
            assert result.success and result.records == 1, result.summary_lines()
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
            # The checkout error puts the customer in checkout_errors_recent (latest error on the
            # checkout, this week): the profile lists it, the audiences panel counts and charts
            # it, and lists the customer among its members.
            browser.wait_for(
                "document.getElementById('customer-audiences').innerText"
                ".includes('checkout_errors_recent')",
                timeout=15,
                what="the audience on the profile",
            )
            assert "Email: " in browser.evaluate("document.getElementById('consent').innerText")
            browser.wait_for(
                "!!document.querySelector('#audiences tr[data-name=\"checkout_errors_recent\"]')",
                what="the audiences panel",
            )
            assert browser.evaluate("document.querySelectorAll('#audiences tr').length") == 4
            browser.evaluate(
                "document.querySelector('#audiences tr[data-name=\"checkout_errors_recent\"]')"
                ".click(); true"
            )
            browser.wait_for(
                f"!!document.querySelector('#audience-members tr[data-id=\"{customer_id}\"]')"
                " && !!document.querySelector('#audience-chart svg path')",
                what="the audience's members and its size over time",
            )
            assert "checkout_errors_recent" in browser.evaluate(
                "document.getElementById('audience-title').innerText"
            )
            shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
