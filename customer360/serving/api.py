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
import re
import secrets
import time
import traceback
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from typing import Annotated, Any

import duckdb
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BeforeValidator

from customer360.config import Settings
from customer360.serving import audiences_api
from customer360.serving.profile_traits import TRAIT_COLUMNS
from customer360.serving.propensity import profile_propensity
from customer360.serving.reader import ServingCopy, ServingNotPublished, ServingReader

log = logging.getLogger(__name__)

MAX_QUERY_LENGTH = 100
MAX_PAGE_SIZE = 100
# A customer id is what staging reads as one (dbt macro json_integer: `-?[0-9]+`, a BIGINT), so
# every customer the marts hold has a profile.
MIN_CUSTOMER_ID = -(2**63)
MAX_CUSTOMER_ID = 2**63 - 1
CUSTOMER_ID_TEXT = re.compile(r"-?[0-9]{1,19}")


def customer_id_from_text(text: str) -> int | None:
    """The customer id a text names, or None: ASCII digits, after an optional `-`, within a
    BIGINT. Not int()'s or pydantic's reading, which also take `+`, spaces, `_` and `7.0` (so
    `+7`, `7%20` and `7_0` named customers 7 and 70), and digits of other scripts ('٣')."""
    if not CUSTOMER_ID_TEXT.fullmatch(text):
        return None
    value = int(text)
    return value if MIN_CUSTOMER_ID <= value <= MAX_CUSTOMER_ID else None


def _path_customer_id(value: Any) -> Any:
    if isinstance(value, str) and customer_id_from_text(value) is None:
        raise ValueError(
            "a customer id is an optional - and 1 to 19 digits 0-9, from"
            f" {MIN_CUSTOMER_ID} to {MAX_CUSTOMER_ID}"
        )
    return value


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
LIST_LIMIT = 10  # favourite products and recent errors shown per customer
# The profile's summary: the customer_360 row (the view's `age` is dbt's, on the day it is read).
SUMMARY_SQL = "select * from customer_360 where customer_id = $1"
# The profile's lists, read from the marts' tables in the serving copy in one query (a query
# costs ~1 ms here, mostly planning): favourite products (kind 0), recent errors (kind 1),
# purchase stats per channel (kind 2) and activity (kind 3). One ORDER BY gives each kind its
# own order, since the other kinds' sort columns are NULL: products by purchases desc,
# last_purchased_at desc, product_name; errors by last_at desc, occurrences desc, error_message,
# page; channels Online then Instore (name desc); events by last_at desc, then event desc. A
# customer has few rows; the first LIST_LIMIT products and errors are kept.
LISTS_SQL = """
select 0 as kind, purchases, last_purchased_at as last_at, null::bigint as occurrences,
    product_name as name, null::varchar as page, null::bigint as items,
    null::decimal(18, 2) as per_order, null::decimal(18, 2) as amount
from customer_popular_items where customer_id = $1
union all
select 1, null, last_at, occurrences, error_message, page, null, null, null
from customer_recent_errors where customer_id = $1
union all
select 2, null, null, number_of_orders, channel, null, number_of_items_purchased,
    items_per_order, amount_spent
from customer_purchase_stats where customer_id = $1
union all
select 3, null, last_at, null, event, null, null, null, null
from customer_activity where customer_id = $1
order by kind, purchases desc nulls last, last_at desc nulls last,
    case when kind = 1 then occurrences end desc nulls last,
    case when kind >= 2 then name end desc nulls last, name nulls last, page nulls last
"""

# A search's matches in customer_details, parameters (q, id or null, q, q, q): every customer
# when q is empty, else the customer with that id and those whose name, email or any stitched
# email (customer_identities: trimmed, lower-case) contains q, case-insensitively.
SEARCH_CONDITION = """
    ? = ''
    or customer_id = ?
    or contains(lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '')), lower(?))
    or contains(lower(coalesce(email, '')), lower(?))
    or customer_id in (
        select customer_id from customer_identities
        where identifier_type = 'email' and contains(identifier, lower(?))
    )
"""

# Every identifier stitched to the customer (customer_identities): its id, email addresses and
# browsers' anonymous ids, with when each was first and last seen.
IDENTITIES_SQL = """
select identifier_type, identifier, first_seen_at, last_seen_at
from customer_identities where customer_id = $1
order by identifier_type, identifier
"""


def parsed(sql: str) -> duckdb.Statement:
    """A query parsed once: a request binds and runs the parsed statement (each execution works
    on a copy of it) instead of parsing its text again, ~0.3-0.8 ms of CPU less per query here.
    Parsing reads no catalogue, so one parse serves every copy and cursor."""
    with duckdb.connect(":memory:") as con:
        (statement,) = con.extract_statements(sql)
    return statement


# Module level: FastAPI resolves the (string) annotations below in this module's globals.
BEARER = HTTPBearer(auto_error=False)
STATIC_DIR = resources.files("customer360.serving") / "static"


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


class RouteLogMiddleware:
    """Logs method, route template, status and time: never the path, query string or an id.

    A request that fails unexpectedly gets a JSON 500 like every other error, and the log names
    the exception's type and where it was raised, not its message (which may hold the request's
    values: a name, an email, a customer id)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        started_response = [False]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                started_response[0] = True
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception as exc:
            if started_response[0]:
                raise
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "%s %s failed: %s at %s:%d",
                scope["method"],
                getattr(scope.get("route"), "path", "(no route)"),
                type(exc).__name__,
                frame.filename,
                frame.lineno,
            )
            response = JSONResponse(
                status_code=500,
                content={"detail": f"internal error ({type(exc).__name__}); see the server log"},
            )
            await response(scope, receive, send_status)
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
    summary_sql, lists_sql = parsed(SUMMARY_SQL), parsed(LISTS_SQL)
    identities_sql = parsed(IDENTITIES_SQL)

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

    # The token as clients send it: curl sends its non-ASCII characters as typed (UTF-8 in a
    # UTF-8 terminal), Python's http.client and a browser's fetch (the dashboard) as Latin-1.
    # Starlette decodes a header as Latin-1, so its bytes as sent are
    # credentials.encode("latin-1").
    accepted = []
    if settings.api_token is not None:
        accepted.append(settings.api_token.encode())
        try:
            accepted.append(settings.api_token.encode("latin-1"))
        except UnicodeEncodeError:
            pass

    async def require_token(  # async: a plain def would cost a trip through the threadpool
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if settings.api_token is None:
            return
        sent = b"" if credentials is None else credentials.credentials.encode("latin-1")
        matches = [secrets.compare_digest(sent, token) for token in accepted]
        if credentials is None or not any(matches):
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
                description=(
                    "Customer id, or part of the name or of any email stitched to the customer"
                    " (case-insensitive)"
                ),
            ),
        ] = "",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        # Lower-cased by DuckDB, as the marts lower-case the stitched emails (Python's lower()
        # differs: 'İ' -> 'i̇', a final 'Σ' -> 'ς').
        text = q.strip()
        as_id = customer_id_from_text(text)
        params = [text, as_id, text, text, text]
        with reader.session() as (_, cur):
            cur.execute(
                f"""
                select customer_id, first_name, last_name, email, city, country,
                    count(*) over () as total
                from customer_details
                where {SEARCH_CONDITION}
                order by customer_id = ? desc, customer_id
                limit ? offset ?
                """,
                [*params, as_id, limit, offset],
            )
            items = _rows(cur)
            if items:
                total = items[0]["total"]
            elif offset == 0:
                total = 0
            else:  # past the last page: the matches are still there
                total = cur.execute(
                    f"select count(*) from customer_details where {SEARCH_CONDITION}", params
                ).fetchone()[0]
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
        customer_id: Annotated[
            int, BeforeValidator(_path_customer_id), Path(ge=MIN_CUSTOMER_ID, le=MAX_CUSTOMER_ID)
        ],
    ) -> Response:
        # Point queries on one pooled cursor of the latest copy (see reader.py).
        with reader.session() as (copy, cur):
            summary = _rows(cur.execute(summary_sql, [customer_id]))
            if not summary:
                raise HTTPException(status_code=404, detail=f"no customer with id {customer_id}")
            rows = cur.execute(lists_sql, [customer_id]).fetchall()
            identities = _rows(cur.execute(identities_sql, [customer_id]))
            audience_parts = audiences_api.profile_parts(cur, customer_id, summary[0])
            propensity = profile_propensity(cur, customer_id)
        lists: dict[int, list[tuple]] = {0: [], 1: [], 2: [], 3: []}
        for kind, *values in rows:
            lists[kind].append(tuple(json_value(v) for v in values))
        # Each row: purchases, last_at, count, name, page, items, per_order, amount (LISTS_SQL).
        favourite_products = [
            {"product_name": name, "purchases": purchases, "last_purchased_at": at}
            for purchases, at, _, name, *_ in lists[0][:LIST_LIMIT]
        ]
        recent_errors = [
            {"error_message": name, "page": page, "last_at": at, "occurrences": count}
            for _, at, count, name, page, *_ in lists[1][:LIST_LIMIT]
        ]
        purchase_stats = [
            {
                "channel": name,
                "number_of_orders": count,
                "number_of_items_purchased": items,
                "items_per_order": per_order,
                "amount_spent": amount,
            }
            for _, _, count, name, _, items, per_order, amount in lists[2]
        ]
        activity = [{"event": name, "last_at": at} for _, at, _, name, *_ in lists[3]]
        published = publication(copy)
        row = summary[0]
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
            "traits": {column: row[column] for column in TRAIT_COLUMNS if column in row},
            "favourite_products": favourite_products,
            "activity": activity,
            "recent_errors": recent_errors,
            "identities": identities,
            "propensity": propensity,
            "customer_360": row,
            "as_of": row["as_of"],
            "as_of_age_seconds": (
                None if as_of is None else round((datetime.now(UTC) - as_of).total_seconds(), 3)
            ),
            "publication": published,
            **audience_parts,  # consent, audiences
        }
        # Serialised directly: every value is JSON-ready already (FastAPI's encoder is slow).
        return Response(json.dumps(profile), media_type="application/json")

    audiences_api.register(app, reader, api)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        with resources.as_file(STATIC_DIR / "index.html") as page:
            return FileResponse(page, media_type="text/html")

    with resources.as_file(STATIC_DIR) as static_dir:
        app.mount("/static", StaticFiles(directory=static_dir), name="static")

    return app
