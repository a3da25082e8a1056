"""Pure parts of the generator: record builders, pickers, scheduling, bad records (no services)."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from customer360.generator import bad_records, catalog, records
from customer360.generator.event_mix import STREAM_MIX, SmoothWeightedRoundRobin
from customer360.generator.history import plan_campaign_sends
from customer360.generator.live_events import LiveCustomers

NOW = datetime(2026, 11, 27, 18, 40, 47, 123456, tzinfo=UTC)


def test_catalogue_is_a_fashion_brand_of_believable_size():
    assert 60 <= len(catalog.PRODUCTS) <= 150
    assert len({p.product_id for p in catalog.PRODUCTS}) == len(catalog.PRODUCTS)
    assert {"Dresses", "Tops", "Jeans", "Shoes", "Accessories", "Outerwear"} <= set(
        catalog.CATEGORIES
    )
    assert set(catalog.CATEGORY_POPULARITY) == set(catalog.CATEGORIES)
    assert all(5 <= p.price <= 250 for p in catalog.PRODUCTS)
    assert {store["city"] for store in catalog.STORES} <= {c for c, _, _ in catalog.CITIES}


def test_uuid4_is_a_valid_version_4_uuid_and_reproducible():
    a, b = random.Random(9), random.Random(9)
    for _ in range(500):
        text = records.uuid4(a)
        assert str(uuid.UUID(int=b.getrandbits(128), version=4)) == text
        assert uuid.UUID(text).version == 4


def test_iso_and_millis():
    assert records.iso(NOW) == "2026-11-27T18:40:47.123+00:00"
    millis = records.to_millis(NOW)
    assert records.from_millis(millis) == records.truncate_to_millis(NOW)
    assert records.from_millis(millis).tzinfo is UTC


def test_object_id_carries_the_time_and_is_reproducible():
    oid = records.object_id(random.Random(1), NOW)
    assert oid.generation_time == NOW.replace(microsecond=0)
    assert oid == records.object_id(random.Random(1), NOW)


def test_weighted_picks_in_proportion():
    picker = records.Weighted([("a", 1), ("b", 3)])
    rng = random.Random(0)
    counts = Counter(picker.pick(rng) for _ in range(40_000))
    assert 0.72 < counts["b"] / 40_000 < 0.78


def test_poisson_mean():
    rng = random.Random(0)
    for mean in (0.3, 4, 80):
        draws = [records.poisson(rng, mean) for _ in range(20_000)]
        assert abs(sum(draws) / len(draws) - mean) < 0.05 * mean + 0.02
    assert records.poisson(rng, 0) == 0


def test_activity_is_heavy_tailed_with_mean_one():
    rng = random.Random(0)
    levels = sorted(records.activity_level(rng) for _ in range(50_000))
    assert 0.95 < sum(levels) / len(levels) < 1.05
    top_percent = levels[-500:]
    assert sum(top_percent) / sum(levels) > 0.07  # the top 1 % do >7 % of the buying
    assert levels[len(levels) // 2] < 0.7  # the median customer is below average


def test_user_document_follows_the_contract():
    user = records.make_user(random.Random(2), 17, NOW)
    assert user["id"] == 17
    assert user["created_at"] == user["updated_at"] == records.truncate_to_millis(NOW)
    assert set(user["address"]) == {"street", "city", "postcode", "country"}
    datetime.strptime(user["dob"], "%Y-%m-%d")
    assert "@" in user["email"] and "'" not in user["email"]
    assert records.make_user(random.Random(2), 17, NOW) == user


def test_profile_change_sets_contract_fields():
    rng = random.Random(3)
    user = records.make_user(rng, 1, NOW)
    seen = set()
    for _ in range(200):
        change = records.profile_change(rng, user)
        assert set(change) <= {"address", "email", "last_name", "consent"} and change
        if "consent" in change:
            assert change["consent"]["email"]["status"] in {"granted", "withdrawn"}
        seen |= set(change)
    assert seen == {"address", "email", "last_name", "consent"}


def test_consent_at_signup_and_unsubscribe_records():
    """About 55 % granted and 15 % declined at sign-up, the rest unknown (no field); an
    unsubscribe record says so and carries no open or click."""
    statuses = [
        records.make_user(random.Random(n), n, NOW).get("consent", {}).get("email", {})
        for n in range(1, 2001)
    ]
    granted = sum(s.get("status") == "granted" for s in statuses) / len(statuses)
    withdrawn = sum(s.get("status") == "withdrawn" for s in statuses) / len(statuses)
    assert 0.5 < granted < 0.6 and 0.12 < withdrawn < 0.18
    assert all(s.get("at") == records.truncate_to_millis(NOW) for s in statuses if s)
    record = records.email_record("e", 1, NOW, "c", ["x"], False, False, NOW, unsubscribed=True)
    assert record["unsubscribed"] is True and not record["email_opened"]
    assert "unsubscribed" not in records.email_record("e", 1, NOW, "c", [], True, False, NOW)


def test_order_items_are_typed_and_from_the_catalogue():
    rng = random.Random(4)
    products = {p.product_id: p for p in catalog.PRODUCTS}
    for _ in range(300):
        order = records.make_online_order(rng, 5, NOW, None)
        ids = [item["product_id"] for item in order["items"]]
        assert len(ids) == len(set(ids)) >= 1
        for item in order["items"]:
            assert isinstance(item["price"], float) and item["quantity"] >= 1
            assert item["price"] <= products[item["product_id"]].price
        assert order["status"] in {s for s, _ in catalog.ORDER_STATUSES}
    store = catalog.STORES[0]
    assert records.make_instore_order(rng, 5, NOW, store)["store"] == store


def test_sessions_log_in_before_success_and_orders_check_out():
    rng = random.Random(5)
    for _ in range(500):
        pages = records.plan_session(rng, with_order=True)
        names = [page for page, _, _ in pages]
        assert catalog.LOGIN_SUCCESS_PAGE in names
        assert names.index(catalog.LOGIN_PAGE) < names.index(catalog.LOGIN_SUCCESS_PAGE)
        assert ("checkout.html", "purchase", None) in pages
        assert names.index("order_confirmation.html") > names.index("checkout.html")
    errors = [
        message
        for _ in range(3_000)
        for _, _, message in records.plan_session(rng)
        if message is not None
    ]
    assert {"Payment declined", "Item out of stock", "404 Not Found", "Session expired"} <= set(
        errors
    )


def test_email_responses_click_only_after_open():
    rng = random.Random(6)
    responses = [records.plan_email_response(rng, 0.5) for _ in range(5_000)]
    opened = [r for r in responses if r.open_after_ms is not None]
    clicked = [r for r in responses if r.click_after_ms is not None]
    assert 0.45 < len(opened) / len(responses) < 0.55
    assert 0 < len(clicked) < len(opened)
    assert all(r.open_after_ms is not None and r.click_after_ms >= r.open_after_ms for r in clicked)
    assert all(r.open_record for r in opened if r.click_after_ms is None)


def test_campaign_sends_are_spread_over_the_window():
    end = records.to_millis(NOW)
    start = end - 365 * 86_400_000
    sends = plan_campaign_sends(random.Random(7), start, end)
    assert 50 <= len(sends) <= 100
    assert all(start <= at < end and 3 <= len(send.items) <= 5 for at, send in sends)
    assert [at for at, _ in sends] == sorted(at for at, _ in sends)


def test_smooth_round_robin_is_exact_and_interleaved():
    scheduler = SmoothWeightedRoundRobin({"a": 90, "b": 9, "c": 1})
    picks = [scheduler.next() for _ in range(1_000)]
    assert Counter(picks) == {"a": 900, "b": 90, "c": 10}
    assert max(len(run) for run in "".join(picks).split("b")) <= 20  # b every ~10 picks
    assert "c" in picks[:150]  # even a 1 % kind comes early
    with pytest.raises(ValueError):
        SmoothWeightedRoundRobin({"a": 0})


def test_stream_mix_matches_the_history_model():
    total = sum(STREAM_MIX.values())
    assert 0.6 < STREAM_MIX["weblog"] / total < 0.9
    assert STREAM_MIX["email_sent"] > STREAM_MIX["email_followup"] > STREAM_MIX["online_order"]
    assert STREAM_MIX["online_order"] > STREAM_MIX["instore_order"] > STREAM_MIX["user_delete"]


def test_customers_pool_picks_and_removes_in_constant_time():
    pool = LiveCustomers()
    for customer_id in range(1, 6):
        pool.add({"id": customer_id})
    pool.remove(2)
    pool.remove(5)
    assert sorted(pool.ids) == [1, 3, 4] and 2 not in pool and len(pool) == 3
    rng = random.Random(0)
    assert {pool.pick(rng) for _ in range(100)} == {1, 3, 4}


def test_bad_records_break_the_contract_as_named():
    rng = random.Random(8)
    good = records.make_weblog(rng, 3, "s", NOW, ("home.html", "view", None))
    for _ in range(20):
        with pytest.raises(ValueError):
            json.loads(bad_records.invalid_json(rng, good))
    assert "user_id" not in bad_records.missing_user_id(good)
    assert not isinstance(bad_records.wrong_user_id_type(rng, good)["user_id"], int)
    wrong = bad_records.wrong_date_type(rng, good)["date"]
    with pytest.raises((ValueError, TypeError)):
        datetime.fromisoformat(wrong)
    assert bad_records.unknown_customer_id(rng, 100) > 100 + bad_records.UNKNOWN_CUSTOMER_OFFSET - 1


# -- identity stitching ------------------------------------------------------------------------


def test_a_session_is_anonymous_until_its_login() -> None:
    import random

    from customer360.generator import catalog, records

    views = [
        ("home.html", "view", None),
        (catalog.LOGIN_PAGE, "view", None),
        (catalog.LOGIN_SUCCESS_PAGE, "login", None),
        ("cart.html", "view", None),
    ]
    assert records.session_identity(random.Random(1), views, 7) == [None, None, 7, 7]
    no_login = [("home.html", "view", None)] * 3
    seen = {tuple(records.session_identity(random.Random(s), no_login, 7)) for s in range(50)}
    assert seen == {(None, None, None), (7, 7, 7)}  # anonymous, or a browser still logged in


def test_weblog_identity_fields() -> None:
    from customer360.generator import records

    weblog = {"event_id": "e", "user_id": 7, "date": "d", "page": "home.html"}
    assert records.with_identity(weblog, None, "anon-1") == {
        "event_id": "e", "date": "d", "page": "home.html", "anonymous_id": "anon-1"
    }  # fmt: skip
    assert records.with_identity(weblog, 7, "anon-1")["user_id"] == 7
    assert records.device_id(8, shared=False) == "anon-00000008"
    assert records.device_id(8, shared=True) == records.device_id(7, shared=False)


def test_guest_sale_names_the_buyer_by_email_as_typed() -> None:
    import random

    from customer360.generator import records

    order = {"_id": 1, "user_id": 7, "date": "d", "items": [], "store": {}}
    typed = set()
    for s in range(60):
        sale = records.guest_sale(random.Random(s), order, "ann.lee@example.com")
        assert "user_id" not in sale and sale["items"] == []
        assert sale["customer_email"].strip().lower() == "ann.lee@example.com"
        typed.add(sale["customer_email"])
    assert len(typed) == 4  # as is, upper-case, capitalised, spaces


def test_a_seeded_history_with_identity_has_anonymous_browsing_and_guest_sales() -> None:
    """The seed's writer with fake outputs: what identity stitching needs, in proportion."""
    import json
    import random

    from customer360.generator import catalog, history, records

    class Outputs:
        def __init__(self) -> None:
            self.weblogs: list[dict] = []
            self.documents: dict[str, list[dict]] = {}

        def produce(self, topic, key, value) -> None:
            self.weblogs.append(json.loads(value))

        def add(self, collection, document) -> None:
            self.documents.setdefault(collection, []).append(document)

    now_ms = records.to_millis(records.truncate_to_millis(history.default_now()))
    start_ms = now_ms - 90 * history.DAY_MS
    outputs = Outputs()
    writer = history._HistoryWriter(
        random.Random(3), now_ms, start_ms, [], outputs, outputs, "weblogs", "emails", True
    )
    for customer_id in range(1, 401):
        writer.customer(customer_id)
    weblogs = outputs.weblogs
    anonymous = [w for w in weblogs if "user_id" not in w]
    logins = [w for w in weblogs if w["page"] == catalog.LOGIN_SUCCESS_PAGE]
    assert all("anonymous_id" in w for w in weblogs)
    assert 0.2 < len(anonymous) / len(weblogs) < 0.8, (len(anonymous), len(weblogs))
    assert logins and all("user_id" in w for w in logins)
    devices: dict[str, set[int]] = {}
    for w in logins:
        devices.setdefault(w["anonymous_id"], set()).add(w["user_id"])
    assert any(len(customers) > 1 for customers in devices.values())  # shared devices
    instore = outputs.documents["instore_orders"]
    guests = [o for o in instore if "user_id" not in o]
    assert 0.05 < len(guests) / len(instore) < 0.3, (len(guests), len(instore))
    emails = {u["email"] for u in outputs.documents["users"]}
    assert all(o["customer_email"].strip().lower() in emails for o in guests)
    assert any(o["customer_email"] not in emails for o in guests)  # typed another way
