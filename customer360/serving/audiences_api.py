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
# size at the end of that minute), the last HISTORY_POINTS minutes with changes.
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
        summary="An audience's members now, since when, paged",
        responses={404: {"description": "No such audience"}},
    )
    def audience_members(
        name: Annotated[str, Path(pattern=NAME_PATTERN)],
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> dict[str, Any]:
        with reader.session() as (_, cur):
            audience = known(cur, name)
            items = _rows(
                cur.execute(
                    """
                    select m.customer_id, m.entered_at, c.first_name, c.last_name, c.email,
                        c.email_consent
                    from customer_audiences m
                    left join customer_360 c on c.customer_id = m.customer_id
                    where m.audience = ?
                    order by m.entered_at desc, m.customer_id
                    limit ? offset ?
                    """,
                    [name, limit, offset],
                )
            )
        return {
            "name": name,
            "total": audience["size"],
            "limit": limit,
            "offset": offset,
            "items": items,
        }

    @app.get(
        "/api/audiences/{name}/history",
        dependencies=dependencies,
        summary="An audience's size over time, from its entries and exits",
        responses={404: {"description": "No such audience"}},
    )
    def audience_history(name: Annotated[str, Path(pattern=NAME_PATTERN)]) -> dict[str, Any]:
        with reader.session() as (_, cur):
            audience = known(cur, name)
            points = _rows(cur.execute(HISTORY_SQL, [name, HISTORY_POINTS]))
        points.reverse()
        return {"name": name, "size": audience["size"], "points": points}
