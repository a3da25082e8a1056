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
replayed); a new parse of the project forgets everything.

The replay runs the models as dbt does (its profile's `threads`): each model in a transaction of
its own, on several connections at once, a model as soon as the models it reads have committed,
and a model that fails keeps nothing and stops the models after it. A batch's models are mostly
small statements that DuckDB plans and runs on one core, so two side by side share the two.
Every model is incremental on watermarks of its own (dbt/macros/incremental.sql), so a build
that stops halfway is completed by the next one, as after a failed dbt build.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Collection, Iterable, Mapping

import duckdb

# dbt-duckdb names a model's temporary relation with the time of the build.
TEMP_RELATION_STAMP = re.compile(r"__dbt_tmp\d+")
# Connections replaying models side by side: the machine's two cores (dbt's profile has 4
# threads, for its own builds, which mostly wait for dbt's Python).
REPLAY_CONNECTIONS = 2


def model_statements(queries: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The statements dbt sent for each model, from (unique id, sql) pairs in the order dbt
    sent them, without what changes nothing in the warehouse: transaction control (the replay
    has its own transaction) and lone selects (dbt reading the catalog or a value while it
    renders; what it read is in the statements that follow, which two builds must agree on).
    Catalog reads are also credited to whichever model needed the cache first, so they would
    make the same model's statements differ from build to build."""
    statements: dict[str, list[str]] = {}
    with duckdb.connect() as parser:
        for unique_id, sql in queries:
            if not unique_id.startswith("model."):
                continue
            if changes_nothing(parser, sql):
                continue
            statements.setdefault(unique_id, []).append(sql)
    return statements


def changes_nothing(parser: duckdb.DuckDBPyConnection, sql: str) -> bool:
    kinds = statement_kinds(parser, sql)  # None: kept, replaying it is what dbt did
    return kinds is not None and kinds <= {
        duckdb.StatementType.TRANSACTION,
        duckdb.StatementType.SELECT,
    }


def statement_kinds(
    parser: duckdb.DuckDBPyConnection, sql: str
) -> set[duckdb.StatementType] | None:
    """The kinds of the statements in `sql` (dbt sends one a call, or several), as DuckDB's
    parser on `parser` reads them; None when it cannot parse them."""
    try:
        return {statement.type for statement in parser.extract_statements(sql)}
    except duckdb.ParserException:
        return None


def comparable(statements: list[str]) -> tuple[str, ...]:
    """Statements as compared between two builds: the temporary relation's time stamp aside."""
    return tuple(TEMP_RELATION_STAMP.sub("__dbt_tmp", sql) for sql in statements)


class ModelReplay:
    """The statements of each model that two dbt builds in a row agreed on."""

    def __init__(self) -> None:
        self._last_seen: dict[str, tuple[str, ...]] = {}
        # Parsed once: DuckDB parses a string again at every execution, and a batch's models
        # send ~225 KB of SQL (~50 ms of parsing a batch, measured 2026-12-07).
        self._agreed: dict[str, list[duckdb.Statement]] = {}
        # Each model's seconds in its last replay: which model to start first (_UnitRunner).
        self._seconds: dict[str, float] = {}

    def learn(self, statements: Mapping[str, list[str]]) -> None:
        """Take in what a dbt build sent: a model's statements become replayable when they
        equal those of the model's previous build, and stop being so when they differ."""
        with duckdb.connect() as parser:
            for unique_id, sent in statements.items():
                seen = comparable(sent)
                if self._last_seen.get(unique_id) == seen:
                    self._agreed[unique_id] = [
                        statement for sql in sent for statement in parser.extract_statements(sql)
                    ]
                else:
                    self._agreed.pop(unique_id, None)
                self._last_seen[unique_id] = seen

    def forget(self) -> None:
        self._last_seen.clear()
        self._agreed.clear()
        self._seconds.clear()

    def can_replay(self, models: Iterable[str]) -> bool:
        return not self.unlearnt(models)

    def unlearnt(self, models: Iterable[str]) -> list[str]:
        """The `models` whose statements two dbt builds in a row have not agreed on yet."""
        return [unique_id for unique_id in models if unique_id not in self._agreed]

    def replay(
        self,
        con: duckdb.DuckDBPyConnection,
        models: list[str],
        inputs: Mapping[str, Collection[str]],
        together: Collection[str] = (),
        connections: int = REPLAY_CONNECTIONS,
    ) -> dict[str, float]:
        """Run the statements of `models` (dependencies first, as `models_to_build` gives them)
        on `con` and `connections - 1` more connections to its database, each model in a
        transaction of its own once the models it reads (`inputs`, see `model_inputs`) have
        committed; the models in `together` and those they read first, in one transaction
        (one snapshot of what they read). Raises ReplayError naming the first model that
        failed: it kept nothing, the models after it did not run, those before it are kept.
        Returns each model's seconds.

        This thread replays on `con` itself: DuckDB interrupts a query of its own connection
        at once on a Ctrl-C (or a run's termination), another's only after seconds; the other
        connections' models are then interrupted too. dbt-duckdb leaves a model's temporary
        relation to the end of its connection, under a new name each build: the replay reuses
        the names, so it drops what it created on `con` (the others are closed)."""
        first = _with_inputs(set(together) & set(models), inputs)
        units = [[m for m in models if m in first]] if first else []
        units += [[m] for m in models if m not in first]
        runner = _UnitRunner(units, inputs, self._seconds)
        others = [con.cursor() for _ in range(min(connections, len(units)) - 1)]
        helpers = [
            threading.Thread(target=runner.work, args=(cursor, self._agreed, False))
            for cursor in others
        ]
        existing = temporary_tables(con)
        interrupted = False
        try:
            for helper in helpers:
                helper.start()
            runner.work(con, self._agreed)
        except BaseException:
            interrupted = True
            runner.stop()
            for cursor in others:
                cursor.interrupt()  # what they run is rolled back
            raise
        finally:
            for helper in helpers:
                helper.join()
            for cursor in others:
                cursor.close()
            try:
                _drop_temporary_tables(con, temporary_tables(con) - existing)
            except duckdb.Error:
                if not interrupted:  # else what interrupted it is what the caller must see
                    raise
        if runner.failure is not None:  # on another connection
            raise runner.failure
        self._seconds.update(runner.seconds)
        return runner.seconds


class _UnitRunner:
    """Hands out units (models replayed in one transaction) to the connections, the one with
    the longest chain of work after it first, once the units it reads have committed."""

    def __init__(
        self,
        units: list[list[str]],
        inputs: Mapping[str, Collection[str]],
        last_seconds: Mapping[str, float],
    ):
        unit_of = {m: i for i, unit in enumerate(units) for m in unit}
        self.units = units
        self.needs = [
            {unit_of[i] for m in unit for i in inputs.get(m, ()) if i in unit_of} - {n}
            for n, unit in enumerate(units)
        ]
        # The longest chain of (last measured) seconds from a unit to the end of the build;
        # the units come dependencies first.
        self.chain = [0.0] * len(units)
        for n in reversed(range(len(units))):
            after = [self.chain[c] for c in range(n + 1, len(units)) if n in self.needs[c]]
            cost = sum(last_seconds.get(m, 0.01) for m in units[n])
            self.chain[n] = cost + max(after, default=0.0)
        self.pending = set(range(len(units)))
        self.done: set[int] = set()
        self.seconds: dict[str, float] = {}
        self.failure: BaseException | None = None
        self._stopped = False
        self._changed = threading.Condition()

    def _next(self) -> int | None:
        with self._changed:
            while True:
                if self.failure is not None or self._stopped or not self.pending:
                    return None
                ready = [n for n in self.pending if self.needs[n] <= self.done]
                if ready:
                    unit = max(ready, key=lambda n: self.chain[n])
                    self.pending.discard(unit)
                    return unit
                self._changed.wait()

    def work(
        self,
        cursor: duckdb.DuckDBPyConnection,
        statements: Mapping[str, list[duckdb.Statement]],
        main=True,
    ) -> None:
        """Replay units on `cursor` until none is left or one failed. What fails is kept in
        `failure` (the first), so the others stop; it is raised here only on the `main`
        thread (the others are joined by it)."""
        while (unit := self._next()) is not None:
            try:
                seconds = self._run(cursor, self.units[unit], statements)
            except BaseException as exc:
                with self._changed:
                    self.failure = self.failure or exc
                    self._changed.notify_all()
                if main:
                    raise
                return
            with self._changed:
                self.seconds.update(seconds)
                self.done.add(unit)
                self._changed.notify_all()

    @staticmethod
    def _run(
        cursor: duckdb.DuckDBPyConnection,
        unit: list[str],
        statements: Mapping[str, list[duckdb.Statement]],
    ) -> dict[str, float]:
        seconds: dict[str, float] = {}
        cursor.execute("begin")
        unique_id = unit[0]
        try:
            for unique_id in unit:
                started = time.perf_counter()
                for statement in statements[unique_id]:
                    cursor.execute(statement)
                seconds[unique_id] = time.perf_counter() - started
            cursor.execute("commit")
        except BaseException as exc:
            try:
                cursor.execute("rollback")
            except duckdb.Error:
                pass  # a commit that failed has ended the transaction
            if isinstance(exc, duckdb.Error):
                raise ReplayError(unique_id, exc) from exc
            raise
        return seconds

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()


def _with_inputs(models: set[str], inputs: Mapping[str, Collection[str]]) -> set[str]:
    """`models` and every model they read, directly or not."""
    found, pending = set(models), list(models)
    while pending:
        for parent in inputs.get(pending.pop(), ()):
            if parent in inputs and parent not in found:
                found.add(parent)
                pending.append(parent)
    return found


def _drop_temporary_tables(con: duckdb.DuckDBPyConnection, names: set[str]) -> None:
    if not names:
        return
    con.execute("begin")
    try:
        for name in names:
            con.execute(f'drop table temp.main."{name}"')
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


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


def model_inputs(manifest: Mapping, models: Collection[str]) -> dict[str, set[str]]:
    """What each of `models` reads among `models` and the sources (unique ids), directly or
    through views and models not among them: whatever must be written before it runs."""
    nodes = manifest["nodes"]
    reached: dict[str, set[str]] = {}

    def reads(unique_id: str) -> set[str]:
        if unique_id not in reached:
            found: set[str] = set()
            for parent in nodes[unique_id]["depends_on"]["nodes"]:
                if parent in models or parent.startswith("source."):
                    found.add(parent)
                elif parent in nodes:
                    found |= reads(parent)
            reached[unique_id] = found
        return reached[unique_id]

    return {unique_id: reads(unique_id) for unique_id in models}
