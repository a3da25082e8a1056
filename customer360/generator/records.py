"""Builders of source records (the data contract), shared by `seed` and `stream`.

Every builder takes the `random.Random` to draw from, so a seed reproduces the same records.
Mongo datetimes are tz-aware UTC truncated to milliseconds (what BSON keeps); Kafka dates are
ISO-8601 strings with milliseconds and `+00:00`.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import Any, Generic, TypeVar

from bson import ObjectId

from customer360.generator import catalog
from customer360.generator.catalog import Product

T = TypeVar("T")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# How much an average customer does in a year. `seed` draws each customer's counts around these
# (scaled by the customer's activity level), and `stream` keeps the same proportions.
YEARLY_PER_CUSTOMER = {
    "sessions": 10.0,  # browsing sessions without an order (each has several page views)
    "online_orders": 2.4,  # each also comes with a checkout session
    "instore_orders": 1.2,
    "emails": 15.0,  # marketing emails received
}
# Share of emails opened / of opened emails clicked, averaged over customers.
MEAN_OPEN_RATE = 0.25
MEAN_CLICK_GIVEN_OPEN = 0.2
# Share of sessions whose visitor logs in (sessions with an order always log in).
LOGIN_SHARE = 0.35
# Chance that a page view fails with one of `catalog.ERRORS`.
ERROR_SHARE = 0.03


class Weighted(Generic[T]):
    """Draws items by weight with one `random()` call and a bisect (faster than `choices`)."""

    def __init__(self, items: Sequence[tuple[T, float]]):
        self.items = [item for item, _ in items]
        self.cumulative = list(itertools.accumulate(weight for _, weight in items))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> T:
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


PRODUCT_PICKER: Weighted[Product] = Weighted(
    [
        (
            product,
            catalog.CATEGORY_POPULARITY[product.category]
            / sum(1 for p in catalog.PRODUCTS if p.category == product.category),
        )
        for product in catalog.PRODUCTS
    ]
)
CITY_PICKER = Weighted([((city, prefixes), weight) for city, prefixes, weight in catalog.CITIES])
GENDER_PICKER = Weighted(catalog.GENDERS)
EMAIL_DOMAIN_PICKER = Weighted(catalog.EMAIL_DOMAINS)
STATUS_PICKER = Weighted(catalog.ORDER_STATUSES)
LANDING_PICKER = Weighted(catalog.LANDING_PAGES)
BROWSE_ACTION_PICKER = Weighted(catalog.BROWSE_ACTIONS)
ERROR_PICKER = Weighted(
    [((page, action, message), w) for page, action, message, w in catalog.ERRORS]
)
STORE_CITIES = {store["city"] for store in catalog.STORES}
ITEM_COUNT_PICKER = Weighted([(1, 50), (2, 27), (3, 13), (4, 6), (5, 3), (6, 1)])


# ---------------------------------------------------------------------------------------------
# Small pure helpers


def to_millis(moment: datetime) -> int:
    """Milliseconds since the epoch of a tz-aware datetime."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_millis(millis: int) -> datetime:
    """The tz-aware UTC datetime of epoch milliseconds (exact, no float rounding)."""
    return EPOCH + timedelta(milliseconds=millis)


def iso(moment: datetime) -> str:
    """`2026-11-27T18:40:47.123+00:00`: the Kafka date format of the contract."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")


def truncate_to_millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def object_id(rng: random.Random, moment: datetime) -> ObjectId:
    """An ObjectId whose time part is `moment` and whose other 8 bytes come from `rng`."""
    seconds = int(moment.timestamp())
    return ObjectId(seconds.to_bytes(4, "big") + rng.randbytes(8))


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def uuid4(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng` (so a seed reproduces it).

    Same text as `str(uuid.UUID(int=rng.getrandbits(128), version=4))`, several times faster.
    """
    h = f"{rng.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth for small means, a rounded normal for large ones)."""
    if mean <= 0:
        return 0
    if mean > 40:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def activity_level(rng: random.Random) -> float:
    """How active a customer is, relative to the average (mean 1, heavy tail: lognormal).

    About half the customers are below 0.6, while the top 1 % are 8 times the average or more;
    capped at 20 times (a heavy buyer, not a reseller).
    """
    sigma = 1.1
    return min(rng.lognormvariate(-sigma * sigma / 2, sigma), 20.0)


# ---------------------------------------------------------------------------------------------
# Customers


def make_address(rng: random.Random, city_and_prefixes: tuple[str, tuple[str, ...]] | None = None):
    city, prefixes = city_and_prefixes or CITY_PICKER.pick(rng)
    prefix = rng.choice(prefixes)
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    postcode = f"{prefix} {rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}"
    return {
        "street": f"{rng.randint(1, 240)} {rng.choice(catalog.STREET_NAMES)}",
        "city": city,
        "postcode": postcode,
        "country": catalog.COUNTRY,
    }


def make_email_address(rng: random.Random, first_name: str, last_name: str) -> str:
    first = first_name.lower()
    last = last_name.lower().replace("'", "")
    style = rng.random()
    if style < 0.4:
        local = f"{first}.{last}"
    elif style < 0.7:
        local = f"{first}.{last}{rng.randint(1, 99)}"
    elif style < 0.85:
        local = f"{first[0]}{last}{rng.randint(60, 99)}"
    else:
        local = f"{first}{rng.randint(100, 9999)}"
    return f"{local}@{EMAIL_DOMAIN_PICKER.pick(rng)}"


def make_dob(rng: random.Random, today: date) -> str:
    age_years = min(85.0, max(18.0, rng.gauss(36, 11)))
    return (today - timedelta(days=int(age_years * 365.25))).isoformat()


def make_user(rng: random.Random, customer_id: int, created_at: datetime) -> dict[str, Any]:
    """A `users` document. `updated_at` equals `created_at`; later changes move it on."""
    gender = GENDER_PICKER.pick(rng)
    if gender == "Female" or (gender != "Male" and rng.random() < 0.5):
        first_name = rng.choice(catalog.FEMALE_FIRST_NAMES)
    else:
        first_name = rng.choice(catalog.MALE_FIRST_NAMES)
    last_name = rng.choice(catalog.LAST_NAMES)
    created_at = truncate_to_millis(created_at)
    return {
        "_id": object_id(rng, created_at),
        "id": customer_id,
        "first_name": first_name,
        "last_name": last_name,
        "email": make_email_address(rng, first_name, last_name),
        "gender": gender,
        "dob": make_dob(rng, created_at.date()),
        "address": make_address(rng),
        "created_at": created_at,
        "updated_at": created_at,
        **make_consent(customer_id, created_at),
    }


# Email marketing consent at sign-up: asked of most customers (granted or declined); older
# accounts carry none (unknown). Drawn from a generator of its own per customer, so the rest of
# the data does not change with it.
CONSENT_AT_SIGNUP = (("granted", 0.55), ("withdrawn", 0.15))
# Of the profile changes, the share that is the customer changing their email consent.
CONSENT_CHANGE_SHARE = 0.08


def make_consent(customer_id: int, at: datetime) -> dict[str, Any]:
    draw = random.Random(customer_id * 7_919 + 1).random()
    for status, share in CONSENT_AT_SIGNUP:
        if draw < share:
            return {"consent": {"email": {"status": status, "at": at}}}
        draw -= share
    return {}


def profile_change(rng: random.Random, user: dict[str, Any]) -> dict[str, Any]:
    """The fields a customer changes in their profile (a move, a new email, a new surname).

    Returns the `$set` body without `updated_at`.
    """
    what = rng.random()
    if what < 0.55:
        same_city = rng.random() < 0.6
        city = user.get("address", {}).get("city")
        match = next(((c, p) for c, p, _ in catalog.CITIES if c == city), None)
        return {"address": make_address(rng, match if same_city else None)}
    if what < 0.85:
        return {"email": make_email_address(rng, user["first_name"], user["last_name"])}
    if what >= 1 - CONSENT_CHANGE_SHARE:  # the caller sets `consent.email.at` to the change time
        status = user.get("consent", {}).get("email", {}).get("status")
        return {"consent": {"email": {"status": "withdrawn" if status == "granted" else "granted"}}}
    last_name = rng.choice(catalog.LAST_NAMES)
    return {
        "last_name": last_name,
        "email": make_email_address(rng, user["first_name"], last_name),
    }


# ---------------------------------------------------------------------------------------------
# Orders


def make_items(rng: random.Random) -> list[dict[str, Any]]:
    """Order lines: 1-6 distinct products, mostly one of each, some at a sale price."""
    count = ITEM_COUNT_PICKER.pick(rng)
    products: dict[str, Product] = {}
    while len(products) < count:
        product = PRODUCT_PICKER.pick(rng)
        products[product.product_id] = product
    items = []
    for product in products.values():
        price = product.price
        if rng.random() < 0.2:  # bought in a sale
            price = round(price * rng.choice((0.5, 0.6, 0.7, 0.8)), 2)
        quantity = 1 if rng.random() < 0.88 else rng.randint(2, 3)
        items.append(
            {
                "product_id": product.product_id,
                "product_name": product.product_name,
                "category": product.category,
                "price": float(price),
                "quantity": quantity,
            }
        )
    return items


def _order(rng: random.Random, user_id: int, when: datetime) -> dict[str, Any]:
    """What online and in-store orders share: id, customer, date (to the millisecond), items."""
    when = truncate_to_millis(when)
    return {"_id": object_id(rng, when), "user_id": user_id, "date": when, "items": make_items(rng)}


def make_online_order(
    rng: random.Random, user_id: int, when: datetime, address: dict[str, str] | None
) -> dict[str, Any]:
    if address is None or rng.random() < 0.1:  # sent to work, to a friend...
        address = make_address(rng)
    order = _order(rng, user_id, when)  # (the random draws stay in their order, seeds repeat)
    return {**order, "delivery_address": dict(address), "status": STATUS_PICKER.pick(rng)}


def home_store(rng: random.Random, city: str | None) -> dict[str, str] | None:
    """The store a customer of `city` shops in; None if no store is near (they rarely go)."""
    stores = [store for store in catalog.STORES if store["city"] == city]
    return rng.choice(stores) if stores else None


def make_instore_order(
    rng: random.Random, user_id: int, when: datetime, store: dict[str, str] | None
) -> dict[str, Any]:
    return {**_order(rng, user_id, when), "store": dict(store or rng.choice(catalog.STORES))}


# ---------------------------------------------------------------------------------------------
# Web sessions

PageView = tuple[str, str, str | None]  # (page, action, error_message)


def _browse_page(rng: random.Random) -> PageView:
    if rng.random() < ERROR_SHARE:
        return ERROR_PICKER.pick(rng)
    if rng.random() < 0.3:
        category = rng.choice(catalog.CATEGORIES).lower()
        return (f"category/{category}.html", "view", None)
    product = PRODUCT_PICKER.pick(rng)
    return (f"product/{product.product_id}.html", BROWSE_ACTION_PICKER.pick(rng), None)


def plan_session(rng: random.Random, with_order: bool = False) -> list[PageView]:
    """The pages of one visit in order: landing, maybe a login, browsing, maybe a checkout."""
    pages: list[PageView] = [(LANDING_PICKER.pick(rng), "view", None)]
    if with_order or rng.random() < LOGIN_SHARE:
        pages.append((catalog.LOGIN_PAGE, "view", None))
        while rng.random() < 0.08:  # mistyped password, then try again
            pages.append((catalog.LOGIN_PAGE, "login", "Invalid email or password"))
        pages.append((catalog.LOGIN_SUCCESS_PAGE, "login", None))
    while True:
        pages.append(_browse_page(rng))
        if rng.random() < 0.25:
            break
    if with_order:
        pages.append(("cart.html", "view", None))
        pages.append(("checkout.html", "view", None))
        if rng.random() < 0.06:
            pages.append(("checkout.html", "purchase", "Payment declined"))
        pages.append(("checkout.html", "purchase", None))
        pages.append(("order_confirmation.html", "view", None))
    elif rng.random() < 0.15:  # filled a cart and left
        pages.append(("cart.html", "view", None))
    if pages[1][0] == catalog.LOGIN_PAGE and rng.random() < 0.2:
        pages.append(("logout.html", "logout", None))
    return pages


# Quantiles of the time between two page views, lognormal with a median of ~25 s, capped at
# 15 min: drawing from a table is several times cheaper than `lognormvariate` per page view.
_PAGE_GAP_BITS = 12
_PAGE_GAPS_MS = tuple(
    int(min(math.exp(10.1 + 0.9 * NormalDist().inv_cdf((i + 0.5) / 2**_PAGE_GAP_BITS)), 900_000))
    for i in range(2**_PAGE_GAP_BITS)
)


def page_gap_millis(rng: random.Random) -> int:
    """Time between two page views of a session (median ~25 s)."""
    return _PAGE_GAPS_MS[rng.getrandbits(_PAGE_GAP_BITS)]


def make_weblog(
    rng: random.Random, user_id: int, session_id: str, when: datetime, view: PageView
) -> dict[str, Any]:
    page, action, error_message = view
    return {
        "event_id": uuid4(rng),
        "user_id": user_id,
        "date": iso(when),
        "session_id": session_id,
        "page": page,
        "action": action,
        "error_message": error_message,
    }


# ---------------------------------------------------------------------------------------------
# Marketing emails


@dataclass(frozen=True)
class CampaignSend:
    """One campaign mailing: everyone who gets it gets it at about the same time."""

    campaign: str
    sent_at: datetime
    items: tuple[str, ...]


def make_campaign_send(rng: random.Random, campaign: str, sent_at: datetime) -> CampaignSend:
    featured: dict[str, None] = {}
    while len(featured) < rng.randint(3, 5):
        featured[PRODUCT_PICKER.pick(rng).product_name] = None
    return CampaignSend(campaign, truncate_to_millis(sent_at), tuple(featured))


def email_record(
    email_id: str,
    user_id: int,
    sent_at: datetime,
    campaign: str,
    items: Sequence[str],
    opened: bool,
    clicked: bool,
    updated_at: datetime,
    unsubscribed: bool = False,
    recipient_email: str | None = None,
) -> dict[str, Any]:
    """A marketing email record; `unsubscribed` records (the recipient followed the email's
    unsubscribe link) carry `"unsubscribed": true` and the flags the email has by then. With
    identity data, every record of an email carries the address it was sent to,
    `recipient_email` (the customer's address when it was sent)."""
    record = {
        "email_id": email_id,
        "user_id": user_id,
        "date": iso(sent_at),
        "campaign": campaign,
        "items": list(items),
        "email_opened": opened,
        "email_clicked": clicked,
        "updated_at": iso(updated_at),
    }
    if unsubscribed:
        record["unsubscribed"] = True
    if recipient_email is not None:
        record["recipient_email"] = recipient_email
    return record


@dataclass(frozen=True)
class EmailResponse:
    """What a customer will do with an email: delays (ms after sending) of open and click."""

    open_after_ms: int | None
    click_after_ms: int | None  # never without an open; `open_after_ms` <= `click_after_ms`
    open_record: bool  # False when the open pixel was blocked: only the click is recorded


def customer_open_rate(rng: random.Random) -> float:
    """A customer's habit of opening emails (mean `MEAN_OPEN_RATE`, many near 0)."""
    return rng.betavariate(1.2, 1.2 * (1 - MEAN_OPEN_RATE) / MEAN_OPEN_RATE)


def plan_email_response(rng: random.Random, open_rate: float) -> EmailResponse:
    if rng.random() >= open_rate:
        return EmailResponse(None, None, False)
    open_after = int(min(rng.lognormvariate(9.3, 1.6), 14 * 86_400) * 1000)  # median ~3 h
    if rng.random() >= MEAN_CLICK_GIVEN_OPEN:
        return EmailResponse(open_after, None, True)
    click_after = open_after + int(rng.lognormvariate(4.5, 1.2) * 1000)  # median ~90 s
    return EmailResponse(open_after, click_after, rng.random() >= 0.05)


# Of the emails opened, the share whose recipient unsubscribes (retail: ~0.2-1 % of emails);
# `seed` and `stream` follow such an email with an `unsubscribed` record.
UNSUBSCRIBE_SHARE = 0.02


# ---------------------------------------------------------------------------------------------
# Identity stitching (dbt/README.md, "Identity stitching"): on by default in `c360 seed` and
# `c360 stream` (`--no-identity` turns it off); the chaos oracle (customer360/chaos/oracle.py)
# attributes anonymous events and guest sales and lists every customer's identifiers.

# Share of sessions without a login that are anonymous (a cookie, no user_id); the rest come
# from a browser that stayed logged in. Sessions with a login are anonymous until the login.
ANONYMOUS_SESSION_SHARE = 0.6
# Share of customers who browse on the device of the customer before them (a shared family
# computer: both log in on one cookie).
SHARED_DEVICE_SHARE = 0.05
# Share of in-store orders rung up as a guest sale: no user_id, the buyer's email as typed at
# the till (case and spaces as they come).
GUEST_SALE_SHARE = 0.15


def customer_device(customer_id: int) -> str:
    """The cookie of the browser a customer browses on: their own, or for a
    `SHARED_DEVICE_SHARE` of customers the one of the customer before them. Drawn from a
    generator of its own per customer, so `seed` and `stream` agree and the rest of the data
    does not change with it."""
    shared = random.Random(customer_id * 7_919 + 2).random() < SHARED_DEVICE_SHARE
    return device_id(customer_id, shared)


def device_id(customer_id: int, shared: bool) -> str:
    """The cookie (`anonymous_id`) of the browser a customer uses; a shared device is the one of
    the customer with the id before."""
    return f"anon-{customer_id - 1 if shared and customer_id > 1 else customer_id:08x}"


def session_identity(
    rng: random.Random, views: Sequence[PageView], customer_id: int
) -> list[int | None]:
    """The user_id each page view of a session carries: None before the session's successful
    login; for a session without a login, None throughout (anonymous) or the customer (a
    browser that stayed logged in)."""
    logins = [i for i, (page, _, error) in enumerate(views)
              if page == catalog.LOGIN_SUCCESS_PAGE and error is None]  # fmt: skip
    if logins:
        return [None if i < logins[0] else customer_id for i in range(len(views))]
    anonymous = rng.random() < ANONYMOUS_SESSION_SHARE
    return [None if anonymous else customer_id] * len(views)


def with_identity(weblog: dict[str, Any], user_id: int | None, device: str) -> dict[str, Any]:
    """A weblog record of the identity-stitching contract: the browser's `anonymous_id`, and
    `user_id` only once logged in."""
    record = {**weblog, "anonymous_id": device}
    if user_id is None:
        del record["user_id"]
    else:
        record["user_id"] = user_id
    return record


def till_email(rng: random.Random, email: str) -> str:
    """An address as typed at a till: as is, upper-case, capitalised, or with stray spaces."""
    style = rng.random()
    if style < 0.55:
        return email
    if style < 0.7:
        return email.upper()
    if style < 0.85:
        return email.capitalize()
    return f" {email} "


def guest_sale(rng: random.Random, order: dict[str, Any], email: str) -> dict[str, Any]:
    """An in-store order as a guest sale: no user_id, the buyer's email as typed."""
    sale = {key: value for key, value in order.items() if key != "user_id"}
    sale["customer_email"] = till_email(rng, email)
    return sale
