"""What the serving copy holds, read from the warehouse's own catalog.

Every relation of the warehouse's `marts` schema is published, under its own name:

- a **table** (the incremental marts, e.g. `customer_360_base`) is copied row for row, its
  bookkeeping columns (named `_...`) left out;
- a **view over published tables only** (e.g. `customer_360`, `customer_activity`), or over
  such views (`customer_360` reads `customer_traits`), stays a view, and its SQL is dbt's: the
  SQL DuckDB stores for the warehouse view (`duckdb_views()`), with its relations re-pointed at
  the serving copy's relations of the same names (views created after the views they read);
- a view that must be computed when it is read (`READ_TIME_VIEWS`: they show `age`, which
  depends on the day) but reads a relation that is not published (`customer_details` reads
  `intermediate.int_customers`) becomes a table `<mart>_base` of the columns the view passes
  through, plus dbt's view re-pointed at it;
- a view whose rows depend on the day it is read and that a lookup would pay for in planning
  (`DAILY_VIEWS`: `customer_traits`, ~15 ms of DuckDB binding and optimizing per lookup, a third
  of a profile's CPU) is copied as a table computed on the day of publication; the day is part
  of the fingerprint (below), so the first publication of a new day copies it in full;
- any other view (`customer_recent_errors` reads the weblog rollup and staging) is copied as a
  table.

So every rule (age, items per order, activity as rows) is computed by dbt's SQL only; the
serving code holds no copy of any. The re-pointing is done on DuckDB's parse tree
(`json_serialize_sql` / `json_deserialize_sql`), not on the SQL text; a view it cannot re-point
is an error that names it.

`ServingLayout.fingerprint` changes whenever what a serving copy holds could have changed other
than through new data: another warehouse or history (batch ids start again; it is told by when
its first landing batch started, `raw._batches`), a relation or column (name or type), a view's
SQL, or a warehouse table being recreated (a `dbt build --full-refresh` gives tables new catalog
oids; so does opening the warehouse again, so a new process's first publication is a full one),
or a version that rescored every row (VERSIONED_TABLES: a new propensity model), or the day
(`reading_day`) when a DAILY_VIEWS view is published.
A copy published under another fingerprint is rebuilt in full instead of updated (publish.py).
The table identities, versions and day are read once per publication (`WarehouseState`): the
publisher also compares them with the previous publication's to skip one with nothing new.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import duckdb

# The marts every serving copy has (the contract BI tools, the API and the dashboard read).
CONTRACT = (
    "customer_details",
    "customer_360",
    "customer_purchase_stats",
    "customer_popular_items",
    "customer_activity",
    "customer_recent_errors",
)
# Views computed when they are read (they show `age`): never copied as tables.
READ_TIME_VIEWS = ("customer_details", "customer_360")
# Views whose rows depend on the day they are read (days since the last order, recency score,
# segment, lifecycle), published as tables computed on the day of publication rather than as
# views: over a view, every profile lookup bound and optimized the traits' SQL again (~15 ms of
# the ~50 ms of CPU a lookup took, on a 100,000-customer copy), while a publication computes the
# changed customers' rows (~35 ms for ~1,600; all of them ~0.1 s). The day is part of the
# layout's fingerprint and of publish.py's check for changes, so the first publication of a new
# UTC day (the next micro-batch, even one with nothing new) copies them in full.
DAILY_VIEWS = ("customer_traits",)
# Indexed on customer_id: the profile API's lookup of one customer's 31-column row becomes an
# index scan (~1 ms less per profile at 100,000 customers), and so do the views over it.
# Indexing customer_popular_items and customer_recent_errors too gained nothing measurable.
INDEXED_TABLES = ("customer_360_base",)
# The key of every published relation: a publication replaces a customer's rows everywhere.
KEY = "customer_id"
# The marts table whose per-source batch marks (`_<source>_batch_id`, the greatest staging batch
# a customer's row reflects) say which customers changed: every mart row of a customer is
# recomputed by dbt together with the customer's row here, and its marks only go up (see
# dbt/models/intermediate/int_customer_marks.sql).
CHANGE_LOG = "customer_360_base"
# Append-only marts tables whose rows can be added for a customer whose customer_360_base row
# did not change (audience_changes: every customer is evaluated again on a new day), with the
# column that numbers their rows: a publication also replaces the rows of the customers with
# rows above the number the slot reflects (its mark `<table>.<column>`).
SEQUENCED_TABLES = {"audience_changes": "sequence"}
# Marts tables whose rows all change at once, without their customers' customer_360_base rows,
# when a column's value changes (customer_propensity: a new model version rescores every
# customer), with that column: the values present are part of the fingerprint, so a new one
# publishes the copy in full.
VERSIONED_TABLES = {"customer_propensity": "model_version"}
# Schemas whose tables' identities (catalog oids) are part of the fingerprint.
WAREHOUSE_SCHEMAS = ("staging", "intermediate", "marts")


class LayoutError(RuntimeError):
    """The marts are missing or have a shape this module cannot publish."""


@dataclass(frozen=True)
class PublishedTable:
    name: str  # in the serving copy
    source: str  # the warehouse relation it is read from, quoted
    columns: tuple[tuple[str, str], ...]  # (name, type)
    indexed: bool = False
    # Select a few customers with a list of literals rather than a semi-join: DuckDB pushes a
    # constant IN list through a view's window functions into its scans (when int_customers was
    # a view ranking every users document: 20 ms instead of 170 for 1,000 ids). Over tables a
    # semi-join is cheaper.
    literal_keys: bool = False

    def select_sql(self, keys: str = "", literals: str = "") -> str:
        """Select of its rows: all, those of the customers in `keys` (a one-column select), or
        with `literals` (comma-separated ids) when `literal_keys`."""
        sql = f"select {', '.join(quote(c) for c, _ in self.columns)} from {self.source}"
        if self.literal_keys and literals:
            return f"{sql} where {KEY} in ({literals})"
        if keys:
            return f"{sql} where {KEY} in ({keys})"
        return sql


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
    # (mark name, quoted warehouse relation, column) of each SEQUENCED_TABLES table present
    sequences: tuple[tuple[str, str, str], ...] = ()

    @property
    def all_marks(self) -> tuple[str, ...]:
        """The marks a slot records: the change log's batch marks, then the sequences."""
        return self.marks + tuple(name for name, _, _ in self.sequences)

    @property
    def literal_keys(self) -> bool:
        return any(t.literal_keys for t in self.tables)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class WarehouseState:
    """What, besides the marts' own columns and views, says whether a serving copy could have
    changed other than through new data: the warehouse tables' catalog oids, the
    VERSIONED_TABLES values present, and the day the daily views read as today."""

    oids: tuple[tuple[str, str, int], ...]
    versions: dict[str, list]
    day: str


def read_warehouse_state(con: duckdb.DuckDBPyConnection) -> WarehouseState:
    oids = con.execute(
        "select schema_name, table_name, table_oid from duckdb_tables()"
        f" where database_name = current_database() and schema_name in {WAREHOUSE_SCHEMAS}"
        " order by 1, 2"
    ).fetchall()
    return WarehouseState(tuple(oids), versions_present(con), reading_day(con))


def read_layout(
    con: duckdb.DuckDBPyConnection, state: WarehouseState | None = None
) -> ServingLayout:
    """What to publish from the warehouse open on `con` (a few catalog queries); `state` is
    `read_warehouse_state(con)` when the caller has just read it."""
    warehouse = con.execute("select current_database()").fetchone()[0]
    columns: dict[str, list[tuple[str, str]]] = {}
    for relation, column, data_type in con.execute(
        "select table_name, column_name, data_type from duckdb_columns()"
        " where database_name = ? and schema_name = 'marts' order by table_name, column_index",
        [warehouse],
    ).fetchall():
        columns.setdefault(relation, []).append((column, data_type))
    missing = [m for m in (*CONTRACT, CHANGE_LOG) if m not in columns]
    if missing:
        raise LayoutError(
            f"marts {', '.join(missing)} do not exist in the warehouse yet; run a micro-batch "
            "(`c360 run-once`) so dbt builds the marts before publishing."
        )
    tables_sql = (
        "select table_name from duckdb_tables() where database_name = ? and schema_name = 'marts'"
    )
    mart_tables = sorted(r[0] for r in con.execute(tables_sql, [warehouse]).fetchall())
    all_views = con.execute(
        "select schema_name, view_name, sql from duckdb_views()"
        " where database_name = ? and not internal order by view_name",
        [warehouse],
    ).fetchall()
    view_sql = {name: sql for schema, name, sql in all_views if schema == "marts"}
    for relation in mart_tables + list(view_sql):
        if KEY not in dict(columns[relation]):
            raise LayoutError(f"marts.{relation} has no {KEY}: the serving copy cannot publish it")

    def source(relation: str) -> str:
        return f"{quote(warehouse)}.marts.{quote(relation)}"

    def public(relation: str) -> tuple[tuple[str, str], ...]:
        return tuple((c, t) for c, t in columns[relation] if not c.startswith("_"))

    tables = [PublishedTable(t, source(t), public(t), t in INDEXED_TABLES) for t in mart_tables]
    views = []
    parsed_views = {view: _parse_view(con, view, sql) for view, sql in view_sql.items()}
    # Views over published relations only stay views; a view may read another such view, so
    # they are created after the views they read. The daily views are published as tables,
    # which other views read (customer_360 reads customer_traits).
    daily = [view for view in DAILY_VIEWS if view in parsed_views]
    published = {("marts", t) for t in [*mart_tables, *daily]}
    over_published = _views_over(
        published, {view: p for view, p in parsed_views.items() if view not in daily}
    )
    for view in over_published:
        views.append(PublishedView(view, parsed_views[view].repointed(con, lambda ref: ref[1], "")))
    for view, parsed in parsed_views.items():
        if view in over_published:
            continue
        if view in READ_TIME_VIEWS:
            if len(parsed.inputs) != 1:
                raise LayoutError(
                    f"the dbt view marts.{view} reads {len(parsed.inputs)} relations "
                    f"({', '.join('.'.join(i) for i in sorted(parsed.inputs))}); the serving copy "
                    "can publish a view computed when read only over published marts tables or "
                    "over one relation"
                )
            base = f"{view}_base"
            passed = tuple((c, t) for c, t in public(view) if c not in parsed.computed)
            # Over a view (it may rank rows with a window): its customers as a list of literals.
            over_view = next(iter(parsed.inputs)) in {(sc, n) for sc, n, _ in all_views}
            tables.append(
                PublishedTable(base, source(view), passed, base in INDEXED_TABLES, over_view)
            )
            views.append(PublishedView(view, parsed.repointed(con, lambda ref, b=base: b, base)))
        else:
            tables.append(PublishedTable(view, source(view), public(view)))

    marks = tuple(
        c for c, _ in columns[CHANGE_LOG] if c.startswith("_") and c.endswith("_batch_id")
    )
    state = state or read_warehouse_state(con)
    try:  # which history the warehouse holds: when its first landing batch started
        history = con.execute(
            "select started_at from raw._batches order by batch_id limit 1"
        ).fetchone()
    except duckdb.CatalogException:
        history = None
    described = {
        "history": history,
        "versions": state.versions,
        "tables": [(t.name, t.columns, t.literal_keys) for t in tables],
        "views": [(v.name, v.sql) for v in views],
        "marks": marks,
        "oids": state.oids,
        "day": state.day if daily else None,
    }
    fingerprint = hashlib.sha256(json.dumps(described, default=str).encode()).hexdigest()[:32]
    sequences = tuple(
        (f"{table}.{column}", source(table), column)
        for table, column in SEQUENCED_TABLES.items()
        if table in mart_tables and column in dict(columns[table])
    )
    return ServingLayout(
        tuple(tables), tuple(views), source(CHANGE_LOG), marks, fingerprint, sequences
    )


def reading_day(con: duckdb.DuckDBPyConnection) -> str:
    """The day dbt's views read as today (the `reading_date()` macro: the UTC date)."""
    return str(con.execute("select cast(timezone('UTC', now()) as date)").fetchone()[0])


def versions_present(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    """The values of each VERSIONED_TABLES column in the marts of the warehouse open on `con`."""
    found = {}
    for table, column in VERSIONED_TABLES.items():
        try:  # a warehouse without the table or the column yet has no versions of it
            found[table] = con.execute(
                f"select list(distinct {quote(column)} order by {quote(column)})"
                f" from marts.{quote(table)}"
            ).fetchone()[0]
        except (duckdb.CatalogException, duckdb.BinderException):
            continue
    return found


def _views_over(published: set[tuple[str, str]], parsed: dict[str, _ParsedView]) -> list[str]:
    """The views that read only `published` relations or such views, each after the views it
    reads."""
    ordered: list[str] = []
    available = set(published)
    pending = dict(parsed)
    while True:
        ready = sorted(v for v, p in pending.items() if p.inputs <= available)
        if not ready:
            return ordered
        for view in ready:
            ordered.append(view)
            available.add(("marts", view))
            del pending[view]


_CREATE_VIEW = re.compile(r"^\s*create\s+view\s+.+?\s+as\s+(.*?);?\s*$", re.I | re.S)


@dataclass
class _ParsedView:
    sql: str
    tree: dict
    inputs: set[tuple[str, str]]  # (schema, relation) it reads
    computed: set[str]  # output columns that are not a column passed through

    def repointed(self, con: duckdb.DuckDBPyConnection, name_for, key: str) -> str:
        """The view's select with each input relation renamed by `name_for((schema, name))`,
        unqualified (it resolves in the serving file's own catalog); cached under `key`."""
        cached = _REPOINTED.get((self.sql, key))
        if cached is not None:
            return cached
        tree = json.loads(json.dumps(self.tree))
        for node in _input_nodes(tree):
            new = name_for((node.get("schema_name") or "main", node["table_name"]))
            # Keep the old name as the alias, so columns qualified with it still resolve.
            node["alias"] = node.get("alias") or node["table_name"]
            node.update(catalog_name="", schema_name="", table_name=new)
            if "qualified_name" in node:
                node["qualified_name"] = {"path": [new]}
        select = con.execute("select json_deserialize_sql(?)", [json.dumps(tree)]).fetchone()[0]
        _REPOINTED[(self.sql, key)] = select
        return select


# Parsing and re-pointing cost a few queries per view; a publication reads the same SQL again.
_PARSED: dict[str, _ParsedView] = {}
_REPOINTED: dict[tuple[str, str], str] = {}


def _parse_view(con: duckdb.DuckDBPyConnection, view: str, create_sql: str) -> _ParsedView:
    cached = _PARSED.get(create_sql)
    if cached is not None:
        return cached
    match = _CREATE_VIEW.match(create_sql)
    if not match:
        raise LayoutError(f"cannot read the SQL of the view marts.{view}: {create_sql[:200]}")
    tree = json.loads(con.execute("select json_serialize_sql(?)", [match.group(1)]).fetchone()[0])
    if tree.get("error"):
        raise LayoutError(f"cannot parse the SQL of the view marts.{view}: {tree}")
    inputs = {(n.get("schema_name") or "main", n["table_name"]) for n in _input_nodes(tree)}
    computed = set()
    statement = tree["statements"][0]["node"]
    for expression in statement.get("select_list", []):
        passed = expression.get("class") == "COLUMN_REF" and expression.get("alias") in (
            "",
            expression["column_names"][-1],
        )
        if not passed:
            computed.add(expression.get("alias") or "")
    parsed = _PARSED[create_sql] = _ParsedView(create_sql, tree, inputs, computed)
    return parsed


def _input_nodes(tree: dict) -> list[dict]:
    """The parse tree's references to stored relations (CTE names left out)."""
    ctes = {name for node in _nodes(tree) for name in _cte_names(node)}
    return [
        node
        for node in _nodes(tree)
        if node.get("type") == "BASE_TABLE" and node.get("table_name") not in ctes
    ]


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
