"""The audiences in the profile API: `GET /api/audiences`, `GET /api/audiences/{name}/members`,
`GET /api/audiences/{name}/history`, and the consent and audiences parts of a profile.

Reads the serving copy's `audience_definitions` (the definitions of
dbt/models/marts/audience_definitions.yml), `customer_audiences` (members now, with
`entered_at`) and `audience_changes` (every entry and exit): the marts' answer as it is. A copy
published before the audiences existed answers with no audiences.
"""

from __future__ import annotations

from typing import Annotated, Any

import duckdb
from fastapi import FastAPI, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError

from customer360.serving.reader import ServingReader

MAX_PAGE_SIZE = 100
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

AUDIENCES_SQL = """
select d.audience as name, d.description, d.channel, d.condition,
    count(m.customer_id) as size
from audience_definitions d
left join customer_audiences m on m.audience = d.audience
group by all
order by name
"""

# The audience's size after each change, as steps: one point per UTC minute with changes (the
# size at the end of that minute), the last HISTORY_POINTS minutes with changes (one more row
# is read to know whether earlier minutes were cut). `size` is summed over the whole history
# before the limit applies, so it is exact on a cut history too.
HISTORY_POINTS = 500
HISTORY_SQL = """
with steps as (
    select date_trunc('minute', changed_at) as minute,
        sum(case change when 'entered' then 1 else -1 end) as net,
        count(*) filter (where change = 'entered') as entered,
        count(*) filter (where change = 'exited') as exited
    from audience_changes
    where audience = ?
    group by 1
)
select minute as "at", entered, exited, sum(net) over (order by minute) as size
from steps
order by minute desc
limit ?
"""

# An audience's members, newest first by their entry's place in audience_changes
# (`entered_sequence`): sequences are unique and never reused, and a member keeps its entry's
# sequence while it stays. So a page can continue strictly after the last member it returned
# (`after`), and publications between two pages neither shift nor repeat anyone: a member who
# enters (or leaves and enters again) gets a greater sequence, before any cursor; one who exits
# takes no place the next page counts on. `offset` is kept for the clients of the first version
# of this endpoint; it shifts when members enter or exit between pages.
MEMBERS_SQL = """
select m.customer_id, m.entered_at, c.first_name, c.last_name, c.email, c.email_consent,
    m.entered_sequence
from customer_audiences m
left join customer_360 c on c.customer_id = m.customer_id
where m.audience = ? and (?::bigint is null or m.entered_sequence < ?)
order by m.entered_sequence desc
limit ? offset ?
"""
# A cursor is the entered_sequence of a page's last member, in decimal; 18 digits keep any
# value a BIGINT (sequences count changes from 1, so they never come near it).
CURSOR_PATTERN = r"^[0-9]{1,18}$"

PROFILE_AUDIENCES_SQL = """
select m.audience, d.description, d.channel, m.entered_at
from customer_audiences m
join audience_definitions d on d.audience = m.audience
where m.customer_id = ?
order by m.audience
"""


def _rows(cursor) -> list[dict[str, Any]]:
    from customer360.serving.api import json_value

    names = [d[0] for d in cursor.description]
    return [
        {name: json_value(value) for name, value in zip(names, row, strict=True)}
        for row in cursor.fetchall()
    ]


def _invalid_query(field: str, value: Any, message: str) -> RequestValidationError:
    """A 422 in the shape FastAPI gives a query parameter that fails its own checks."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}]
    )


def _members_page(
    cur, name: str, limit: int, after: str | None, offset: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` members after the cursor `after` (or `offset` members), and the cursor of
    the page's last member when more follow (one row more is read to know)."""
    bound = None if after is None else int(after)
    rows = _rows(cur.execute(MEMBERS_SQL, [name, bound, bound, limit + 1, offset]))
    page = rows[:limit]
    next_cursor = str(page[-1]["entered_sequence"]) if len(rows) > limit else None
    for row in page:
        del row["entered_sequence"]  # the cursor's business, not the member's
    return page, next_cursor


def _size_before(points: list[dict[str, Any]]) -> int:
    """The size before the first point: its size less its own minute's change. 0 when the
    history is whole (nothing came before its first change) or empty."""
    if not points:
        return 0
    first = points[0]
    return first["size"] - first["entered"] + first["exited"]


def profile_parts(cur: duckdb.DuckDBPyConnection, customer_id: int, row: dict) -> dict:
    """The profile's `consent` (from its customer_360 row) and `audiences` (now, since when)."""
    try:
        audiences = _rows(cur.execute(PROFILE_AUDIENCES_SQL, [customer_id]))
    except duckdb.CatalogException:
        audiences = []
    return {
        "consent": {
            "email": {
                "status": row.get("email_consent") or "unknown",
                "since": row.get("email_consent_since"),
            }
        },
        "audiences": audiences,
    }


def register(app: FastAPI, reader: ServingReader, dependencies: list) -> None:
    def definitions(cur) -> dict[str, dict[str, Any]]:
        try:
            return {a["name"]: a for a in _rows(cur.execute(AUDIENCES_SQL))}
        except duckdb.CatalogException:
            return {}

    def known(cur, name: str) -> dict[str, Any]:
        audience = definitions(cur).get(name)
        if audience is None:
            raise HTTPException(status_code=404, detail=f"no audience named {name}")
        return audience

    @app.get("/api/audiences", dependencies=dependencies, summary="The audiences and their sizes")
    def list_audiences() -> dict[str, Any]:
        with reader.session() as (_, cur):
            return {"items": list(definitions(cur).values())}

    @app.get(
        "/api/audiences/{name}/members",
        dependencies=dependencies,
        summary="An audience's members now, since when, newest first, paged by a cursor",
        description=(
            "Members newest first (by when they entered, in the order the pipeline saw the"
            " entries). Each page's `next` is a cursor: pass it as `after` for the next page;"
            " `next` is null on the last page. Following `next` while the pipeline publishes"
            " never returns a member twice and never skips a member present throughout;"
            " members who enter meanwhile are newer than the cursor, on no later page."
            " `total` is the audience's size when the page was read."
        ),
        responses={
            404: {"description": "No such audience"},
            422: {"description": "A bad limit, offset or cursor, or both offset and after"},
        },
    )
    def audience_members(
        name: Annotated[str, Path(pattern=NAME_PATTERN)],
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        after: Annotated[
            str | None,
            Query(
                pattern=CURSOR_PATTERN,
                description="The `next` of the previous page: the members after it, in order",
            ),
        ] = None,
        offset: Annotated[
            int | None,
            Query(
                ge=0,
                le=10_000_000,
                deprecated=True,
                description=(
                    "Members to skip. Not stable while the pipeline publishes: a member entering"
                    " between two pages repeats one, an exit skips one. Use `after`."
                ),
            ),
        ] = None,
    ) -> dict[str, Any]:
        if after is not None and offset is not None:
            raise _invalid_query("offset", offset, "offset cannot be combined with after")
        with reader.session() as (_, cur):
            audience = known(cur, name)
            items, next_cursor = _members_page(cur, name, limit, after, offset or 0)
        return {
            "name": name,
            "total": audience["size"],
            "limit": limit,
            "after": after,
            "offset": offset or 0,
            "next": next_cursor,
            "items": items,
        }

    @app.get(
        "/api/audiences/{name}/history",
        dependencies=dependencies,
        summary="An audience's size over time, from its entries and exits",
        description=(
            f"`points`: one per UTC minute with changes, oldest first (`entered`, `exited`, and"
            f" `size` at the end of the minute), the last {HISTORY_POINTS} such minutes."
            " `truncated` says earlier minutes were left out; `size_before` is the size just"
            " before the first point (0 when the history is whole), where a chart starts."
        ),
        responses={404: {"description": "No such audience"}},
    )
    def audience_history(name: Annotated[str, Path(pattern=NAME_PATTERN)]) -> dict[str, Any]:
        with reader.session() as (_, cur):
            audience = known(cur, name)
            rows = _rows(cur.execute(HISTORY_SQL, [name, HISTORY_POINTS + 1]))
        points = rows[:HISTORY_POINTS][::-1]
        return {
            "name": name,
            "size": audience["size"],
            "truncated": len(rows) > HISTORY_POINTS,
            "size_before": _size_before(points),
            "points": points,
        }
