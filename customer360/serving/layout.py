"""What the serving copy holds, read from the warehouse's own catalog.

- **Tables**: the marts `TABLE_MARTS`, copied row for row (their bookkeeping columns, named
  `_...`, left out), and for each mart of `VIEW_MARTS` a table `<mart>_base` holding the columns
  the mart's dbt view passes through unchanged.
- **Views**: each mart of `VIEW_MARTS` is a view in the serving copy too, and its SQL is dbt's:
  the SQL DuckDB stores for the warehouse view (`duckdb_views()`), with its one input relation
  re-pointed at `<mart>_base`. These marts show `age`, which depends on the day the row is read,
  so the serving copy computes it when it is read, by the rule dbt defines (the macro
  `age_in_years`); the serving code holds no copy of that rule.

The re-pointing is done on DuckDB's parse tree (`json_serialize_sql` / `json_deserialize_sql`),
not on the SQL text. A view whose SQL reads more than one relation cannot be re-pointed and is
an error that names the mart: teach this module what to publish for it.

`ServingLayout.fingerprint` changes whenever what a serving copy holds could have changed other
than through new data: a column (name or type), a view's SQL, or a warehouse table being
recreated (a `dbt build --full-refresh` gives tables new catalog oids). A copy published under
another fingerprint is rebuilt in full instead of updated (see `publish.py`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import duckdb

# Marts copied as tables, in the order they are written.
TABLE_MARTS = (
    "customer_purchase_stats",
    "customer_popular_items",
    "customer_activity",
    "customer_recent_errors",
)
# Marts that are views in the serving copy too (they show `age`, computed when read): dbt's view
# over a table `<mart>_base` of the columns it passes through.
VIEW_MARTS = ("customer_details", "customer_360")
# Indexed on customer_id: the profile API's lookup of one customer's 31-column row becomes an
# index scan (~1 ms less per profile at 100,000 customers). Indexing customer_popular_items and
# customer_recent_errors too gained nothing measurable on sorted tables.
INDEXED_TABLES = ("customer_360_base",)
# The key of every published relation: publications replace a customer's rows in every table.
KEY = "customer_id"
# The marts table whose per-source batch marks (`_<source>_batch_id`, the greatest staging batch
# a customer's row reflects) say which customers changed: every mart row of a customer is
# recomputed by dbt together with the customer's row here, and its marks only go up (see
# dbt/macros/incremental.sql, customer_batch_marks).
CHANGE_LOG = "customer_360_base"
# Schemas whose tables' identities (catalog oids) are part of the fingerprint.
WAREHOUSE_SCHEMAS = ("staging", "intermediate", "marts")


class LayoutError(RuntimeError):
    """The marts are missing or have a shape this module cannot publish."""


@dataclass(frozen=True)
class PublishedTable:
    name: str  # in the serving copy
    source: str  # the warehouse relation it is read from, quoted
    columns: tuple[str, ...]
    indexed: bool = False

    def select_sql(self, where: str = "") -> str:
        return f"select {', '.join(map(quote, self.columns))} from {self.source}" + (
            f" where {where}" if where else ""
        )


@dataclass(frozen=True)
class PublishedView:
    name: str
    sql: str  # a select over the serving copy's own tables, names unqualified


@dataclass(frozen=True)
class ServingLayout:
    tables: tuple[PublishedTable, ...]
    views: tuple[PublishedView, ...]
    change_log: str  # quoted warehouse relation of CHANGE_LOG
    marks: tuple[str, ...]  # its batch-mark columns
    fingerprint: str


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_layout(con: duckdb.DuckDBPyConnection) -> ServingLayout:
    """What to publish from the warehouse open on `con` (a few catalog queries, ~ms)."""
    warehouse = con.execute("select current_database()").fetchone()[0]
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in con.execute(
        "select table_name, column_name, data_type from duckdb_columns()"
        " where database_name = ? and schema_name = 'marts' order by table_name, column_index",
        [warehouse],
    ).fetchall():
        columns.setdefault(table, []).append((column, data_type))
    missing = [m for m in (*TABLE_MARTS, *VIEW_MARTS, CHANGE_LOG) if m not in columns]
    if missing:
        raise LayoutError(
            f"marts {', '.join(missing)} do not exist in the warehouse yet; run a micro-batch "
            "(`c360 run-once`) so dbt builds the marts before publishing."
        )

    def source(mart: str) -> str:
        return f"{quote(warehouse)}.marts.{quote(mart)}"

    def public(mart: str) -> list[str]:
        return [c for c, _ in columns[mart] if not c.startswith("_")]

    tables = [
        PublishedTable(t, source(t), tuple(public(t)), t in INDEXED_TABLES) for t in TABLE_MARTS
    ]
    views = []
    view_sql = dict(
        con.execute(
            "select view_name, sql from duckdb_views()"
            " where database_name = ? and schema_name = 'marts'",
            [warehouse],
        ).fetchall()
    )
    for mart in VIEW_MARTS:
        if mart not in view_sql:
            raise LayoutError(
                f"marts.{mart} is not a view in the warehouse; the serving copy publishes it "
                "as dbt's view over a base table (customer360/serving/layout.py VIEW_MARTS)"
            )
        base = f"{mart}_base"
        select, computed = _repointed(con, mart, view_sql[mart], base)
        passed = tuple(c for c in public(mart) if c not in computed)
        tables.append(PublishedTable(base, source(mart), passed, base in INDEXED_TABLES))
        views.append(PublishedView(mart, select))

    marks = tuple(
        c for c, _ in columns[CHANGE_LOG] if c.startswith("_") and c.endswith("_batch_id")
    )
    oids = con.execute(
        "select schema_name, table_name, table_oid from duckdb_tables()"
        f" where database_name = ? and schema_name in {WAREHOUSE_SCHEMAS} order by 1, 2",
        [warehouse],
    ).fetchall()
    described = {
        "tables": [(t.name, t.columns, columns_of(columns, t)) for t in tables],
        "views": [(v.name, v.sql) for v in views],
        "marks": marks,
        "oids": oids,
    }
    fingerprint = hashlib.sha256(json.dumps(described, default=str).encode()).hexdigest()[:32]
    return ServingLayout(tuple(tables), tuple(views), source(CHANGE_LOG), marks, fingerprint)


def columns_of(columns: dict[str, list[tuple[str, str]]], table: PublishedTable) -> list:
    mart = table.source.rsplit(".", 1)[1].strip('"')
    types = dict(columns[mart])
    return [(c, types[c]) for c in table.columns]


_CREATE_VIEW = re.compile(r"^\s*create\s+view\s+.+?\s+as\s+(.*?);?\s*$", re.I | re.S)


def _repointed(
    con: duckdb.DuckDBPyConnection, mart: str, create_sql: str, base: str
) -> tuple[str, set[str]]:
    """dbt's view `mart` as a select over `base`, and the names of the columns it computes."""
    match = _CREATE_VIEW.match(create_sql)
    if not match:
        raise LayoutError(f"cannot read the SQL of the view marts.{mart}: {create_sql[:200]}")
    tree = json.loads(con.execute("select json_serialize_sql(?)", [match.group(1)]).fetchone()[0])
    if tree.get("error"):
        raise LayoutError(f"cannot parse the SQL of the view marts.{mart}: {tree}")
    ctes = {name for node in _nodes(tree) for name in _cte_names(node)}
    inputs = [
        node
        for node in _nodes(tree)
        if node.get("type") == "BASE_TABLE" and node.get("table_name") not in ctes
    ]
    if len(inputs) != 1:
        names = sorted({f"{n.get('schema_name')}.{n.get('table_name')}" for n in inputs})
        raise LayoutError(
            f"the dbt view marts.{mart} reads {len(inputs)} relations ({', '.join(names)}); the "
            "serving copy can only re-point a view over one relation at its base table"
        )
    node = inputs[0]
    # Keep the old name as the alias, so columns qualified with it still resolve.
    node["alias"] = node.get("alias") or node["table_name"]
    node.update(catalog_name="", schema_name="", table_name=base)
    if "qualified_name" in node:
        node["qualified_name"] = {"path": [base]}
    select = con.execute("select json_deserialize_sql(?)", [json.dumps(tree)]).fetchone()[0]
    statement = tree["statements"][0]["node"]
    computed = set()
    for expression in statement.get("select_list", []):
        passed = expression.get("class") == "COLUMN_REF" and expression.get("alias") in (
            "",
            expression["column_names"][-1],
        )
        if not passed:
            computed.add(expression.get("alias") or "")
    return select, computed


def _nodes(value):
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from _nodes(child)


def _cte_names(node: dict) -> list[str]:
    cte_map = node.get("cte_map")
    if not isinstance(cte_map, dict):
        return []
    return [entry.get("key") for entry in cte_map.get("map", []) if isinstance(entry, dict)]
