"""The profile API and the dashboard: one FastAPI app reading the serving database.

Reads only the published serving copy (read-only, see `reader.py`), never the live warehouse.
Every query is parameterised. When `Settings.api_token` is set, every `/api` route wants
`Authorization: Bearer <token>`; the dashboard's page and scripts carry no personal data and are
served without it (the page asks for the token). Logs name the route template, never the query
string or a customer id.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from customer360.config import Settings
from customer360.serving.reader import ServingCopy, ServingNotPublished, ServingReader

log = logging.getLogger(__name__)

MAX_QUERY_LENGTH = 100
MAX_PAGE_SIZE = 100
MAX_CUSTOMER_ID = 2**63 - 1
DETAILS_COLUMNS = (
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "gender",
    "dob",
    "age",
    "city",
    "country",
)
# customer_activity's events and the customer_360 column holding the last time of each.
ACTIVITY_COLUMNS = (
    ("Instore Order", "last_instore_order_at"),
    ("Online Order", "last_online_order_at"),
    ("Email Sent", "last_email_sent_at"),
    ("Email Opened", "last_email_opened_at"),
    ("Email Clicked", "last_email_clicked_at"),
    ("Website Visit", "last_website_visit_at"),
    ("Website Login", "last_website_login_at"),
)
LIST_LIMIT = 10  # favourite products and recent errors shown per customer
# A customer's favourite products (kind 0) and recent errors (kind 1) in one query (a query costs
# ~1 ms here, mostly planning). One ORDER BY gives each kind its own order, since the other
# kind's sort columns are NULL: products by purchases desc, last_purchased_at desc,
# product_name; errors by last_at desc, occurrences desc, error_message, page. A customer has
# few rows; the first LIST_LIMIT of each kind are kept.
LISTS_SQL = """
select 0 as kind, purchases, last_purchased_at as last_at, null::bigint as occurrences,
    product_name as name, null::varchar as page
from customer_popular_items where customer_id = $1
union all
select 1, null, last_at, occurrences, error_message, page
from customer_recent_errors where customer_id = $1
order by kind, purchases desc nulls last, last_at desc nulls last, occurrences desc nulls last,
    name nulls last, page nulls last
"""

# Module level: FastAPI resolves the (string) annotations below in this module's globals.
BEARER = HTTPBearer(auto_error=False)
STATIC_DIR = resources.files("customer360.serving") / "static"


def items_per_order(items: int, orders: int) -> float:
    """As `customer_purchase_stats` computes it: the exact ratio rounded half up to cents, as one
    division of integers (17 / 8 -> 2.13, 7 / 40 -> 0.18; `round` in Python rounds half to even,
    and a float quotient first rounds 0.175 down)."""
    return math.floor((200 * items + orders) / (2 * orders)) / 100


def json_value(value: Any) -> Any:
    """A mart value as the API serves it: decimals as numbers, times as ISO-8601 UTC."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        # The marts hold naive UTC timestamps.
        return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _rows(cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [
        {name: json_value(value) for name, value in zip(names, row, strict=True)}
        for row in cursor.fetchall()
    ]


def _age_seconds(at: datetime | None, now: datetime) -> float | None:
    return None if at is None else round((now - at).total_seconds(), 3)


def _age_in_years(dob: date | None, today: date) -> int | None:
    """Whole years from dob to today: the serving views' `age` (publish.AGE_SQL) in Python."""
    if dob is None:
        return None
    return today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))


def _customer_360_layout(copy: ServingCopy) -> list[tuple[str, int]] | None:
    """How to build a `customer_360` row from a `customer_360_base` row of this copy.

    The view only adds `age` (from `dob` and the reading date) to the base table; reading the
    base table and computing `age` here spares binding the view on every request (about a
    third of a profile's database time). Gives (column, index in the base row), in the view's
    order, with `age` at the index of `dob`; None if the copy is laid out otherwise (then the
    view is read).
    """
    base = {name: i for i, name in enumerate(copy.columns("customer_360_base"))}
    layout = []
    for name in copy.columns("customer_360"):
        if name == "age" and "age" not in base and "dob" in base:
            layout.append((name, base["dob"]))
        elif name in base:
            layout.append((name, base[name]))
        else:
            return None
    return layout or None


class RouteLogMiddleware:
    """Logs method, route template, status and time: never the path, query string or an id."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            log.info(
                "%s %s %s %.1f ms",
                scope["method"],
                getattr(route, "path", "(no route)"),
                status[0],
                (time.perf_counter() - started) * 1000,
            )


def create_app(settings: Settings) -> FastAPI:
    reader = ServingReader(settings.serving_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        reader.close()

    app = FastAPI(
        lifespan=lifespan,
        title="customer360 profile API",
        version="1",
        description="The Customer 360 of each customer, read from the published serving "
        "database. Timestamps are UTC. When the server has a token, send "
        "`Authorization: Bearer <token>`.",
    )
    app.state.reader = reader

    async def require_token(  # async: a plain def would cost a trip through the threadpool
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if settings.api_token is None:
            return
        if credentials is None or not secrets.compare_digest(
            credentials.credentials.encode(), settings.api_token.encode()
        ):
            raise HTTPException(
                status_code=401,
                detail="a valid bearer token is required: Authorization: Bearer <C360_API_TOKEN>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    app.add_middleware(RouteLogMiddleware)

    @app.exception_handler(ServingNotPublished)
    async def not_published(request: Request, exc: ServingNotPublished):
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    def publication(copy: ServingCopy) -> dict[str, Any]:
        published_at, data_as_of, customers = copy.publication
        now = datetime.now(UTC).replace(tzinfo=None)
        return {
            "published_at": json_value(published_at),
            "published_age_seconds": _age_seconds(published_at, now),
            "data_as_of": json_value(data_as_of),
            "data_age_seconds": _age_seconds(data_as_of, now),
            "customers": customers,
        }

    api = [Depends(require_token)]

    @app.get("/api/status", dependencies=api, summary="When the serving data was published")
    def status() -> dict[str, Any]:
        return publication(reader.current())

    @app.get("/api/customers", dependencies=api, summary="Search customers by id, name or email")
    def search_customers(
        q: Annotated[
            str,
            Query(
                max_length=MAX_QUERY_LENGTH,
                description="Customer id, or part of the name or email (case-insensitive)",
            ),
        ] = "",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        text = q.strip().lower()
        as_id = int(text) if text.isdigit() and len(text) < 19 else None
        with reader.session() as (_, cur):
            cur.execute(
                """
                select customer_id, first_name, last_name, email, city, country,
                    count(*) over () as total
                from customer_details
                where ? = ''
                    or customer_id = ?
                    or contains(
                        lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '')), ?
                    )
                    or contains(lower(coalesce(email, '')), ?)
                order by customer_id = ? desc, customer_id
                limit ? offset ?
                """,
                [text, as_id, text, text, as_id, limit, offset],
            )
            items = _rows(cur)
        total = items[0]["total"] if items else 0
        for item in items:
            del item["total"]
        return {"q": q, "limit": limit, "offset": offset, "total": total, "items": items}

    @app.get(
        "/api/customers/{customer_id}",
        dependencies=api,
        summary="The whole 360 of one customer",
        responses={404: {"description": "No such customer (never existed or deleted)"}},
    )
    def customer_profile(
        customer_id: Annotated[int, Path(ge=0, le=MAX_CUSTOMER_ID)],
    ) -> Response:
        # Two point queries on one pooled cursor of the latest copy (see reader.py).
        with reader.session() as (copy, cur):
            layout = copy.derived(_customer_360_layout)
            if layout is None:
                summary = _rows(
                    cur.execute("select * from customer_360 where customer_id = ?", [customer_id])
                )
            else:
                today = datetime.now(UTC).date()
                summary = [
                    {
                        name: _age_in_years(values[i], today)
                        if name == "age"
                        else json_value(values[i])
                        for name, i in layout
                    }
                    for values in cur.execute(
                        "select * from customer_360_base where customer_id = ?", [customer_id]
                    ).fetchall()
                ]
            if not summary:
                raise HTTPException(status_code=404, detail=f"no customer with id {customer_id}")
            lists = cur.execute(LISTS_SQL, [customer_id]).fetchall()
        favourite_products: list[dict[str, Any]] = []
        recent_errors: list[dict[str, Any]] = []
        for kind, purchases, at, occurrences, name, page in lists:
            if kind == 0:
                if len(favourite_products) < LIST_LIMIT:
                    favourite_products.append(
                        {
                            "product_name": name,
                            "purchases": purchases,
                            "last_purchased_at": json_value(at),
                        }
                    )
            elif len(recent_errors) < LIST_LIMIT:
                recent_errors.append(
                    {
                        "error_message": name,
                        "page": page,
                        "last_at": json_value(at),
                        "occurrences": occurrences,
                    }
                )
        published = publication(copy)
        row = summary[0]
        # Per-channel purchases and the last time of each event are customer_360 columns too
        # (sums of customer_purchase_stats, maxima of customer_activity): two lookups fewer.
        purchase_stats = [
            {
                "channel": channel,
                "number_of_orders": row[f"{prefix}_orders"],
                "number_of_items_purchased": row[f"{prefix}_items_purchased"],
                "items_per_order": items_per_order(
                    row[f"{prefix}_items_purchased"], row[f"{prefix}_orders"]
                ),
                "amount_spent": row[f"{prefix}_amount_spent"],
            }
            for channel, prefix in (("Online", "online"), ("Instore", "instore"))
            if row[f"{prefix}_orders"]
        ]
        activity = sorted(
            (
                {"event": event, "last_at": row[column]}
                for event, column in ACTIVITY_COLUMNS
                if row[column] is not None
            ),
            key=lambda a: (a["last_at"], a["event"]),
            reverse=True,
        )
        as_of = (
            datetime.fromisoformat(row["as_of"].replace("Z", "+00:00")) if row["as_of"] else None
        )
        profile = {
            "customer_id": customer_id,
            # customer_details' columns, all of them in customer_360 too: one lookup fewer.
            "details": {column: row[column] for column in DETAILS_COLUMNS},
            "purchase_stats": purchase_stats,
            "totals": {
                key: row[key]
                for key in (
                    "total_orders",
                    "total_items_purchased",
                    "total_amount_spent",
                    "favourite_product",
                    "favourite_product_purchases",
                )
            },
            "favourite_products": favourite_products,
            "activity": activity,
            "recent_errors": recent_errors,
            "customer_360": row,
            "as_of": row["as_of"],
            "as_of_age_seconds": (
                None if as_of is None else round((datetime.now(UTC) - as_of).total_seconds(), 3)
            ),
            "publication": published,
        }
        # Serialised directly: every value is JSON-ready already (FastAPI's encoder is slow).
        return Response(json.dumps(profile), media_type="application/json")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        with resources.as_file(STATIC_DIR / "index.html") as page:
            return FileResponse(page, media_type="text/html")

    with resources.as_file(STATIC_DIR) as static_dir:
        app.mount("/static", StaticFiles(directory=static_dir), name="static")

    return app
