"""Publish the marts as a read-only serving database after each micro-batch, in proportion to
what changed.

DuckDB lets one process write a database file and no other process read it meanwhile, so BI
tools, the profile API and the dashboard never open the live warehouse: they open the serving
file at `Settings.serving_path` (C360_SERVING_DB) read-only.

**Slots.** The serving copy is kept in a few files, the slots (`<serving file>.slots/0.duckdb`,
`1.duckdb`, `2.duckdb`); the serving path is a hard link to one of them, the current one. A
publication brings another slot up to date and then `os.replace`s the serving path with a new
link to it:

- a reader that has the serving file open keeps reading its file (its inode) to the end, and a
  new connection opens the new one, which is complete: written in one transaction, checkpointed
  and detached before the link. Readers never see half a batch and never wait for the writer;
- a slot is written in place only when no process holds it open. DuckDB takes a shared lock for
  a read-only open and an exclusive one for a write, without waiting, so attaching a slot that a
  reader still holds fails at once (in this process, where locks do not conflict, the open file
  descriptors are checked instead) and the publisher takes another slot. When every other slot
  is held, or missing, a slot's path gets a new file, a copy of the current file brought up to
  date: the reader keeps its (now unlinked) file. Readers must open the serving file read-only
  (as they always had to): a read-write open would write into a file the publisher reuses.

**In proportion to change.** A slot records the batch marks it reflects
(`serving_publication.batch_marks`: per source, the greatest `_<source>_batch_id` of
`marts.customer_360_base`, see layout.CHANGE_LOG). Bringing it up to date replaces, in every
table, the rows of the customers whose marks are above them (new and changed customers) and of
the customers it holds that the marts no longer have (deleted ones), found only when the row
counts say some were deleted. A slot published under another layout (a column, a view's SQL, a
recreated warehouse table: see layout.py), more than `FULL_COPY_SHARE` of its customers behind,
or rewritten `REPLACED_BEFORE_FULL_COPY` times over since its last full copy (in-place updates
leave it less compact), is rebuilt in full instead: every mart copied, sorted by customer.
`force=True` rebuilds in full and drops the other slots.

What the copy holds (tables, and dbt's views re-pointed at them) is described in layout.py.
`serving_publication` holds one row describing the copy: when it was published, the latest
source time it reflects, how many customers, and how it was published.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from customer360.config import Settings
from customer360.serving.layout import (
    CHANGE_LOG,
    KEY,
    LayoutError,
    ServingLayout,
    WarehouseState,
    quote,
    read_layout,
    read_warehouse_state,
)

log = logging.getLogger(__name__)

PUBLICATION_TABLE = "serving_publication"
SLOTS = 3
# A slot with more changed customers than this share of all (and than FULL_COPY_MIN) is rebuilt
# in full: replacing most rows costs more than copying them, and a full copy is sorted again.
FULL_COPY_SHARE = 0.25
FULL_COPY_MIN = 5_000
# Rows replaced in place leave the file less compact and less sorted (it grew ~1.6x over 40
# publications at 100,000 customers): a slot whose customers were replaced this many times
# over since its last full copy is copied in full again (~once per 400 updates of 700).
REPLACED_BEFORE_FULL_COPY = 3.0


class ServingPublishError(RuntimeError):
    """The serving copy could not be written; the previous one stays in place."""


@dataclass
class PublishResult:
    path: Path
    published: bool  # false when nothing changed since this process last published
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    published_at: datetime | None = None
    data_as_of: datetime | None = None  # greatest customer_360.as_of in the copy
    # full: every mart copied; incremental: a slot brought up to date in place; copy: the
    # current file copied to a slot and brought up to date (the other slots were held).
    mode: str = ""
    reason: str = ""  # why a full copy
    customers_replaced: int = 0  # incremental and copy: customers whose rows were replaced
    slot: Path | None = None

    def summary_line(self) -> str:
        if not self.published:
            return f"serving           unchanged ({self.path})"
        how = (
            f"full copy ({self.reason})"
            if self.mode == "full"
            else f"{self.mode}, {self.customers_replaced} customers replaced"
        )
        return (
            f"serving           {self.rows.get('customer_360_base', 0)} customers, "
            f"{sum(self.rows.values())} rows, {self.bytes / 1e6:.1f} MB published to "
            f"{self.path} in {self.seconds * 1000:.0f} ms: {how}"
        )


@dataclass
class _SlotState:
    layout: str
    customers: int
    marks: dict[str, int]
    replaced_since_full: int
    rows: dict[str, int]  # per table


# What this process last published per serving path: the warehouse's dbt watermarks then.
_last_published: dict[Path, tuple] = {}


def _marts_fingerprint(con: duckdb.DuckDBPyConnection, state: WarehouseState) -> tuple | None:
    """The per-customer models' watermarks, which move whenever a mart takes in new data, and
    the warehouse's state (layout.WarehouseState): the tables' catalog oids, which change when
    dbt recreates a table (a full refresh), the versions that rescore every customer (a new
    propensity model), and the day (the daily views' rows change with it)."""
    try:
        watermarks = con.execute(
            "select model, source, batch_id from intermediate.dbt_watermarks order by 1, 2"
        ).fetchall()
    except duckdb.CatalogException:
        return None
    return (tuple(watermarks), state.oids, repr(state.versions), state.day)


def slot_paths(target: Path) -> list[Path]:
    folder = target.with_name(target.name + ".slots")
    return [folder / f"{i}.duckdb" for i in range(SLOTS)]


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _open_in_this_process() -> set[tuple[int, int]]:
    """Files this process has open. DuckDB's file locks do not conflict within one process, so
    a slot a reader here holds (the API under test, a probe) is found this way (Linux /proc)."""
    held = set()
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return held
    for fd in fds:
        try:
            st = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        held.add((st.st_dev, st.st_ino))
    return held


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _remove_stale_files(target: Path) -> None:
    """Copies left behind by a publisher that died before its rename."""
    for folder, pattern in (
        (target.parent, f"{target.name}.*.tmp*"),
        (slot_paths(target)[0].parent, "*.tmp*"),
    ):
        for stale in folder.glob(pattern):
            stale.unlink(missing_ok=True)


def publish_serving_copy(
    con: duckdb.DuckDBPyConnection, settings: Settings, force: bool = False
) -> PublishResult:
    """Bring a slot up to date with the marts of the warehouse open on `con`, then point the
    serving path at it.

    `con` is the pipeline's read-write connection to the warehouse (the only process that may
    open it). Skips when the marts' watermarks have not moved since this process last published
    to the same path (a micro-batch with nothing new), unless `force`, which also rebuilds the
    copy in full (after a full refresh of the marts, say) and drops the other slots.
    """
    target = settings.serving_path.absolute()
    state = read_warehouse_state(con)
    fingerprint = _marts_fingerprint(con, state)
    if (
        not force
        and fingerprint is not None
        and _last_published.get(target) == fingerprint
        and target.exists()
    ):
        return PublishResult(path=target, published=False)

    started = time.monotonic()
    slots = slot_paths(target)
    slots[0].parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_files(target)
    try:
        layout = read_layout(con, state)
    except LayoutError as exc:
        raise ServingPublishError(str(exc)) from exc
    result = PublishResult(
        path=target, published=True, published_at=datetime.now(UTC).replace(tzinfo=None)
    )
    publisher = _Publisher(con, layout, result)
    try:
        current = _identity(target)
        if force:
            slot = _oldest_other(slots, current)
            publisher.rebuild(slot, copy_of=None, reason="forced")
        else:
            slot = publisher.update_a_free_slot(slots, current)
            if slot is None:
                slot = _oldest_other(slots, current)
                copy_of = target if current is not None and target.exists() else None
                publisher.rebuild(slot, copy_of=copy_of, reason="no serving copy yet")
        _link(slot, target)
        if force:
            for other in slots:
                if other != slot:
                    other.unlink(missing_ok=True)
    except (duckdb.Error, OSError) as exc:
        raise ServingPublishError(
            f"publishing the serving copy {target} failed ({type(exc).__name__}: {exc}); "
            "the previous copy, if any, is still served"
        ) from exc
    if fingerprint is not None:
        _last_published[target] = fingerprint
    result.slot = slot
    result.bytes = slot.stat().st_size
    result.seconds = time.monotonic() - started
    log.info("%s", result.summary_line())
    return result


def _oldest_other(slots: list[Path], current: tuple[int, int] | None) -> Path:
    """The slot to give a new file: a missing one, else the least recently published one that
    is not the current one."""
    others = [s for s in slots if _identity(s) is None or _identity(s) != current]
    missing = [s for s in others if not s.exists()]
    if missing:
        return missing[0]
    return min(others, key=lambda s: s.stat().st_mtime_ns)


def _link(slot: Path, target: Path) -> None:
    """Point the serving path at `slot` in one step (a hard link renamed over it)."""
    if slot.with_name(slot.name + ".wal").exists():
        raise ServingPublishError(f"{slot} still has a write-ahead log; not publishing it")
    link = target.with_name(f"{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    os.link(slot, link)
    try:
        os.replace(link, target)
    except BaseException:
        link.unlink(missing_ok=True)
        raise


class _Publisher:
    """One publication: the warehouse connection, what to publish, and what was done."""

    def __init__(self, con: duckdb.DuckDBPyConnection, layout: ServingLayout, result):
        self.con = con
        self.layout = layout
        self.result: PublishResult = result
        self.replaced_since_full = 0

    # -- choosing a slot ----------------------------------------------------------------------
    def update_a_free_slot(self, slots: list[Path], current) -> Path | None:
        """Bring the least stale slot that is not current and not held up to date in place.

        Returns the slot, or None when every other slot is held, missing, or too far behind to
        be worth updating (then the caller gives a slot a new file)."""
        held_here = _open_in_this_process()
        others = [s for s in slots if s.exists() and _identity(s) != current]
        others.sort(key=lambda s: s.stat().st_mtime_ns, reverse=True)
        for slot in others:
            if _identity(slot) in held_here:
                continue
            alias = f"serving_{uuid.uuid4().hex[:8]}"
            try:
                self.con.execute(f"attach '{_sql_path(slot)}' as {alias}")
            except duckdb.Error as exc:  # held by a reader (or unreadable): try another slot
                log.debug("serving slot %s skipped: %s", slot, exc)
                continue
            try:
                updated = self.update(alias)
                if updated:
                    self.con.execute(f"checkpoint {alias}")
            finally:
                self.con.execute(f"detach {alias}")
            if updated:
                return slot
            return None  # too far behind: the others are further behind
        return None

    def rebuild(self, slot: Path, copy_of: Path | None, reason: str) -> None:
        """Give `slot` a new file: a copy of `copy_of` (the current serving file) brought up to
        date, or else every mart copied in full. Written beside it, then renamed over it."""
        tmp = slot.with_name(f"{slot.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        alias = f"serving_{uuid.uuid4().hex[:8]}"
        try:
            done = False
            if copy_of is not None:
                shutil.copyfile(copy_of, tmp)
                self.con.execute(f"attach '{_sql_path(tmp)}' as {alias}")
                try:
                    done = self.update(alias)
                    if done:
                        self.result.mode = "copy"
                        self.con.execute(f"checkpoint {alias}")
                finally:
                    self.con.execute(f"detach {alias}")
                if not done:
                    tmp.unlink()
                    reason = self.result.reason
            if not done:
                self.con.execute(f"attach '{_sql_path(tmp)}' as {alias}")
                try:
                    self.build_full(alias, reason)
                    self.con.execute(f"checkpoint {alias}")
                finally:
                    self.con.execute(f"detach {alias}")
            if tmp.with_name(tmp.name + ".wal").exists():
                raise ServingPublishError(f"{tmp} still has a write-ahead log; not publishing it")
            # The old file's log goes with it: a writer killed while it updated this slot in
            # place leaves one, and beside the new file it is another database's (DuckDB then
            # refuses to attach the slot, and _link refused to serve it, batch after batch).
            slot.with_name(slot.name + ".wal").unlink(missing_ok=True)
            os.replace(tmp, slot)
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
                leftover.unlink(missing_ok=True)

    # -- writing a slot -----------------------------------------------------------------------
    def read_state(self, alias: str) -> _SlotState | None:
        try:
            layout, customers, replaced, marks, rows = self.con.execute(
                f"select layout, customers, replaced_since_full, batch_marks, row_counts"
                f" from {alias}.main.{PUBLICATION_TABLE}"
            ).fetchone()
        except (duckdb.CatalogException, duckdb.BinderException, TypeError):
            return None  # no state, or one written by an older publisher
        return _SlotState(
            layout, customers, json.loads(marks or "{}"), replaced, json.loads(rows or "{}")
        )

    def update(self, alias: str) -> bool:
        """Replace, in the slot attached as `alias`, the rows of every customer changed since
        its marks. False (nothing written) when the slot cannot be updated: no state, another
        layout, or too far behind."""
        state = self.read_state(alias)
        if state is None or state.layout != self.layout.fingerprint:
            self.result.reason = "the copy has another layout" if state else "no state"
            return False
        if not self.layout.marks or set(state.marks) != set(self.layout.all_marks):
            self.result.reason = "no batch marks to follow"
            return False
        if set(state.rows) != {t.name for t in self.layout.tables}:
            self.result.reason = "no row counts"
            return False
        con, layout = self.con, self.layout
        keys = f"temp.main.serving_keys_{alias}"
        marks = ", ".join(map(quote, layout.marks))
        con.execute("begin transaction")
        try:
            changed = " or ".join(f"{quote(m)} > {int(state.marks[m])}" for m in layout.marks)
            con.execute(
                f"create temp table serving_keys_{alias} as"
                f" select {KEY}, {marks} from {layout.change_log} where {changed}"
            )
            highest_sequences = []
            for name, relation, column in layout.sequences:
                con.execute(
                    f"insert into {keys} ({KEY}) select distinct {KEY} from {relation}"
                    f" where {quote(column)} > {int(state.marks[name])}"
                    f" and {KEY} not in (select {KEY} from {keys})"
                )
                highest_sequences.append(
                    con.execute(f"select max({quote(column)}) from {relation}").fetchone()[0]
                )
            replaced, *highest = con.execute(
                "select count(*), "
                + ", ".join(f"max({quote(m)})" for m in layout.marks)
                + f" from {keys}"
            ).fetchone()
            highest += highest_sequences
            if replaced > max(FULL_COPY_SHARE * state.customers, FULL_COPY_MIN):
                self.result.reason = f"{replaced} of {state.customers} customers changed"
                con.execute("rollback")
                return False
            if state.replaced_since_full + replaced > max(
                REPLACED_BEFORE_FULL_COPY * state.customers, FULL_COPY_MIN
            ):
                self.result.reason = (
                    f"{state.replaced_since_full + replaced} customers replaced since its last"
                    f" full copy, {state.customers} customers"
                )
                con.execute("rollback")
                return False
            rows = dict(state.rows)
            self._replace_rows(alias, keys, rows)
            # Customers the marts no longer have (deleted): looked for only when the counts say
            # the copy has some. Their rows are replaced too, not only deleted: a mart may keep a
            # deleted customer's rows (audience_changes keeps every entry and exit, which the
            # audience publisher reads from this copy, in sequence).
            marts_customers = con.execute(f"select count(*) from {layout.change_log}").fetchone()[0]
            extra = rows[CHANGE_LOG] - marts_customers
            if extra:
                con.execute(f"delete from {keys}")
                con.execute(
                    f"insert into {keys} ({KEY}) select {KEY} from {alias}.main.{quote(CHANGE_LOG)}"
                    f" where {KEY} not in (select {KEY} from {layout.change_log})"
                )
                deleted = con.execute(f"select count(*) from {keys}").fetchone()[0]
                if deleted != extra:
                    raise ServingPublishError(
                        f"the serving copy has {extra} customers more than the marts but "
                        f"{deleted} the marts do not have; publish with force=True"
                    )
                self._replace_rows(alias, keys, rows)
                replaced += deleted
            new_marks = [
                max(int(state.marks[m]), -1 if h is None else int(h))
                for m, h in zip(layout.all_marks, highest, strict=True)
            ]
            self.replaced_since_full = state.replaced_since_full + replaced
            self.write_publication(alias, "incremental", new_marks, rows, self._data_as_of(alias))
            con.execute(f"drop table {keys}")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        self.result.mode = self.result.mode or "incremental"
        self.result.customers_replaced = replaced
        return True

    def _replace_rows(self, alias: str, keys: str, rows: dict[str, int]) -> None:
        """Delete the rows of the customers in `keys` from every table of the slot and insert
        their rows from the marts (sorted by customer); `rows` (the slot's rows per table)
        follows the counts DuckDB returns for each statement, so the slot's tables are not
        counted again."""
        con = self.con
        in_keys = f"select {KEY} from {keys}"
        literals = ""
        if self.layout.literal_keys:
            literals = ", ".join(_literal(r[0]) for r in con.execute(in_keys).fetchall())
        for table in self.layout.tables:
            target = f"{alias}.main.{quote(table.name)}"
            deleted = con.execute(f"delete from {target} where {KEY} in ({in_keys})").fetchone()
            rows[table.name] -= deleted[0]
            if literals or not table.literal_keys:
                inserted = con.execute(
                    f"insert into {target} {table.select_sql(in_keys, literals)} order by {KEY}"
                ).fetchone()
                rows[table.name] += inserted[0]

    def build_full(self, alias: str, reason: str) -> None:
        """Every mart copied into the empty database attached as `alias`, sorted by customer."""
        con, layout = self.con, self.layout
        con.execute("begin transaction")
        try:
            for table in layout.tables:
                # Sorted by customer: a profile lookup reads one row group per table.
                con.execute(
                    f"create table {alias}.main.{quote(table.name)} as"
                    f" {table.select_sql()} order by {KEY}"
                )
                if table.indexed:
                    con.execute(
                        f"create index {table.name}_{KEY}"
                        f" on {alias}.main.{quote(table.name)} ({KEY})"
                    )
            marks = (
                con.execute(
                    "select "
                    + ", ".join(f"coalesce(max({quote(m)}), -1)" for m in layout.marks)
                    + f" from {layout.change_log}"
                ).fetchone()
                if layout.marks
                else ()
            )
            marks = tuple(marks) + tuple(
                con.execute(f"select coalesce(max({quote(c)}), 0) from {r}").fetchone()[0]
                for _, r, c in layout.sequences
            )
            self.replaced_since_full = 0
            self.write_publication(
                alias, "full", list(marks), self._counts(alias), self._data_as_of(alias)
            )
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        # dbt's views, created with the slot as the default catalog: their names stay
        # unqualified, so they resolve in whichever file a reader opens.
        with con.cursor() as cur:
            cur.execute(f"use {alias}")
            for view in layout.views:
                cur.execute(f"create view {quote(view.name)} as {view.sql}")
        self.result.mode = "full"
        self.result.reason = reason
        self.result.customers_replaced = 0

    def _counts(self, alias: str) -> dict[str, int]:
        """The slot's rows per table, counted."""
        names = [t.name for t in self.layout.tables]
        counts = self.con.execute(
            "select " + ", ".join(f"(select count(*) from {alias}.main.{quote(n)})" for n in names)
        ).fetchone()
        return dict(zip(names, counts, strict=True))

    def _data_as_of(self, alias: str) -> datetime | None:
        """The latest source time the slot reflects."""
        return self.con.execute(
            f"select max(as_of) from {alias}.main.{quote(CHANGE_LOG)}"
        ).fetchone()[0]

    def write_publication(
        self,
        alias: str,
        mode: str,
        marks: list[int],
        rows: dict[str, int],
        data_as_of: datetime | None,
    ) -> None:
        """The one row of `serving_publication` (in the open transaction): what readers see
        (`published_at`, `data_as_of`, `customers`) and this module's bookkeeping (how the copy
        was published, its layout, its batch marks and its rows per table as JSON)."""
        con, layout = self.con, self.layout
        self.result.rows = rows
        if mode == "full":
            con.execute(
                f"create table {alias}.main.{PUBLICATION_TABLE} (published_at timestamp,"
                " data_as_of timestamp, customers bigint, mode varchar, layout varchar,"
                " replaced_since_full bigint, batch_marks varchar, row_counts varchar)"
            )
        else:
            con.execute(f"delete from {alias}.main.{PUBLICATION_TABLE}")
        con.execute(
            f"insert into {alias}.main.{PUBLICATION_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.result.published_at,
                data_as_of,
                self.result.rows[CHANGE_LOG],
                mode,
                layout.fingerprint,
                self.replaced_since_full,
                json.dumps({m: int(b) for m, b in zip(layout.all_marks, marks, strict=True)}),
                json.dumps(rows),
            ],
        )
        self.result.data_as_of = data_as_of


def _literal(value) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


__all__ = [
    "PublishResult",
    "ServingPublishError",
    "publish_serving_copy",
    "slot_paths",
]
