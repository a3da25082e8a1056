"""The micro-batch's hot path: run the SQL dbt ran for each model, without dbt around it.

A micro-batch's dbt build is mostly dbt's fixed cost (~50-80 ms per model for rendering, events
and connection handling, ~0.3 s per invocation) around SQL that takes ~0.1-0.2 s. Every
incremental model of this project compiles to the same statements on every micro-batch: the
watermarks are subqueries evaluated by DuckDB when the statement runs (dbt/macros/incremental.sql),
not values read when dbt renders the model. So the statements dbt sent for a model (taken from
dbt's own `SQLQuery` events, materialization and hooks included) can be sent again by the
micro-batch directly, and DuckDB computes what dbt would.

dbt stays the definition: statements are learnt only from dbt's own builds, and a model's
statements are replayed only once two dbt builds in a row sent the same ones (so SQL that
depends on the data when it is rendered, or a first build's different path, is never
replayed); a new parse of the project forgets everything. The replayed models run in one
transaction: all of them or none.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping

import duckdb

# dbt-duckdb names a model's temporary relation with the time of the build.
TEMP_RELATION_STAMP = re.compile(r"__dbt_tmp\d+")


def model_statements(queries: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The statements dbt sent for each model, from (unique id, sql) pairs in the order dbt
    sent them, without what changes nothing in the warehouse: transaction control (the replay
    has its own transaction) and lone selects (dbt reading the catalog or a value while it
    renders; what it read is in the statements that follow, which two builds must agree on).
    Catalog reads are also credited to whichever model needed the cache first, so they would
    make the same model's statements differ from build to build."""
    parser = duckdb.connect()
    statements: dict[str, list[str]] = {}
    for unique_id, sql in queries:
        if not unique_id.startswith("model."):
            continue
        if changes_nothing(parser, sql):
            continue
        statements.setdefault(unique_id, []).append(sql)
    parser.close()
    return statements


def changes_nothing(parser: duckdb.DuckDBPyConnection, sql: str) -> bool:
    try:
        kinds = {statement.type for statement in parser.extract_statements(sql)}
    except duckdb.ParserException:
        return False  # kept: replaying it is what dbt did
    return kinds <= {duckdb.StatementType.TRANSACTION, duckdb.StatementType.SELECT}


def comparable(statements: list[str]) -> tuple[str, ...]:
    """Statements as compared between two builds: the temporary relation's time stamp aside."""
    return tuple(TEMP_RELATION_STAMP.sub("__dbt_tmp", sql) for sql in statements)


class ModelReplay:
    """The statements of each model that two dbt builds in a row agreed on."""

    def __init__(self) -> None:
        self._last_seen: dict[str, tuple[str, ...]] = {}
        self._agreed: dict[str, list[str]] = {}

    def learn(self, statements: Mapping[str, list[str]]) -> None:
        """Take in what a dbt build sent: a model's statements become replayable when they
        equal those of the model's previous build, and stop being so when they differ."""
        for unique_id, sent in statements.items():
            seen = comparable(sent)
            if self._last_seen.get(unique_id) == seen:
                self._agreed[unique_id] = list(sent)
            else:
                self._agreed.pop(unique_id, None)
            self._last_seen[unique_id] = seen

    def forget(self) -> None:
        self._last_seen.clear()
        self._agreed.clear()

    def can_replay(self, models: Iterable[str]) -> bool:
        return not self.unlearnt(models)

    def unlearnt(self, models: Iterable[str]) -> list[str]:
        """The `models` whose statements two dbt builds in a row have not agreed on yet."""
        return [unique_id for unique_id in models if unique_id not in self._agreed]

    def replay(self, con: duckdb.DuckDBPyConnection, models: list[str]) -> dict[str, float]:
        """Run the models' statements, in the order given (dependencies first), in one
        transaction; on an error nothing is kept and the error names the model. Returns each
        model's seconds.

        dbt-duckdb leaves a model's temporary relation to the end of its connection, under a
        new name each build; the replay reuses the names, so it drops what it created."""
        seconds: dict[str, float] = {}
        con.execute("begin")
        try:
            existing = temporary_tables(con)
            for unique_id in models:
                started = time.perf_counter()
                for sql in self._agreed[unique_id]:
                    try:
                        con.execute(sql)
                    except duckdb.Error as exc:
                        raise ReplayError(unique_id, exc) from exc
                seconds[unique_id] = time.perf_counter() - started
            for name in temporary_tables(con) - existing:
                con.execute(f'drop table temp.main."{name}"')
        except BaseException:
            con.execute("rollback")
            raise
        con.execute("commit")
        return seconds


def temporary_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("select table_name from duckdb_tables() where temporary").fetchall()
    return {name for (name,) in rows}


class ReplayError(RuntimeError):
    """A replayed statement failed; the transaction was rolled back."""

    def __init__(self, unique_id: str, error: Exception):
        super().__init__(f"{unique_id}: {type(error).__name__}: {error}")
        self.unique_id = unique_id


def models_to_build(manifest: Mapping, sources: Iterable[str]) -> list[str]:
    """The tables (not views) downstream of the raw `sources` in `manifest` (manifest.json as
    a dict), dependencies first: what `dbt build --select source:raw.<source>+` builds once the
    views exist."""
    nodes = manifest["nodes"]
    children = manifest["child_map"]
    wanted = set(sources)
    pending = [
        unique_id
        for unique_id, source in manifest["sources"].items()
        if source["source_name"] == "raw" and source["name"] in wanted
    ]
    selected: set[str] = set()
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in selected and child.startswith("model."):
                selected.add(child)
                pending.append(child)
    ordered: list[str] = []
    placed: set[str] = set()
    while len(placed) < len(selected):
        ready = sorted(
            u
            for u in selected - placed
            if not (set(nodes[u]["depends_on"]["nodes"]) & (selected - placed))
        )
        ordered += ready
        placed.update(ready)
    return [u for u in ordered if nodes[u]["config"]["materialized"] != "view"]
