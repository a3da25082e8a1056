"""The serving copy's slots and layout on a synthetic warehouse (no services, no dbt run).

The synthetic marts (customer360/serving/benchmark.py) have the shape dbt builds: tables
`customer_360_base` and `customer_popular_items` with batch marks, the other marts views. A
"batch" below changes them as a dbt build would: the changed customers' rows are rewritten with
a batch mark above every earlier one, a deleted customer's rows go from every relation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from customer360.config import Settings
from customer360.serving import layout as layout_module
from customer360.serving.benchmark import build_synthetic_warehouse
from customer360.serving.layout import LayoutError, read_layout
from customer360.serving.publish import publish_serving_copy, slot_paths
from tests.test_serving_publish import OtherProcessReader, assert_same_copies

CUSTOMERS = 200


def dbt_like_batch(con: duckdb.DuckDBPyConnection, batch: int, changed: list[int], deleted: int,
                   new: int) -> None:  # fmt: skip
    """Rename `changed` customers, delete one, create one, as a dbt build at `batch` would."""
    ids = ", ".join(map(str, changed))
    con.execute(
        f"update intermediate.int_customers set first_name = 'B{batch}-' || customer_id"
        f" where customer_id in ({ids})"
    )
    con.execute(
        "insert into intermediate.int_customers select ? as customer_id, 'doc', 'New', 'Last',"
        " 'n@example.com', 'F', date '2000-02-29', 'City', 'Country'",
        [new],
    )
    for relation in ("intermediate.int_customers", "marts.customer_360_base",
                     "marts.customer_popular_items", "intermediate.int_weblog_rollup",
                     "marts.customer_identities"):  # fmt: skip
        con.execute(f"delete from {relation} where customer_id = ?", [deleted])
    identity = "customer_id, first_name, last_name, email, gender, dob, city, country"
    con.execute(
        "create or replace temp table template as select * exclude"
        f" ({identity}, _users_batch_id) from marts.customer_360_base limit 1"
    )
    con.execute(f"delete from marts.customer_360_base where customer_id in ({ids}, {new})")
    con.execute(
        f"insert into marts.customer_360_base by name select d.{identity.replace(', ', ', d.')},"
        f" t.*, {batch} as _users_batch_id from intermediate.int_customers d, template t"
        f" where d.customer_id in ({ids}, {new})"
    )
    con.execute(
        f"update marts.customer_popular_items set purchases = purchases + {batch},"
        f" _users_batch_id = {batch} where customer_id in ({ids})"
    )
    con.execute("update intermediate.dbt_watermarks set batch_id = ?", [batch])


@pytest.fixture
def warehouse(tmp_path: Path):
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb")
    reference = settings.with_overrides(serving_db=tmp_path / "full" / "serving.duckdb")
    with duckdb.connect(str(settings.warehouse)) as con:
        build_synthetic_warehouse(con, CUSTOMERS)
    # Reopened: tables get other catalog oids when a database is opened than when they were
    # created, and oids are part of the layout (a full refresh recreates tables).
    with duckdb.connect(str(settings.warehouse)) as con:
        assert publish_serving_copy(con, settings).mode == "full"
    return settings, reference


def publish_both(settings: Settings, reference: Settings, batch: int, **change) -> str:
    with duckdb.connect(str(settings.warehouse)) as con:
        dbt_like_batch(con, batch, **change)
        result = publish_serving_copy(con, settings)
        full = publish_serving_copy(con, reference, force=True)
    assert_same_copies(settings.serving_path, reference.serving_path, f"batch {batch}")
    # An update follows its rows per table from its statements' counts; a full copy counts.
    assert result.rows == full.rows, f"batch {batch}"
    return result.mode


def test_changed_new_and_deleted_customers_are_replaced_in_place(warehouse):
    settings, reference = warehouse
    modes = [
        publish_both(settings, reference, 2, changed=[1, 2, 3], deleted=10, new=1001),
        publish_both(settings, reference, 3, changed=[2, 50], deleted=11, new=1002),
        publish_both(settings, reference, 4, changed=[1001, 7], deleted=1002, new=1003),
        publish_both(settings, reference, 5, changed=[8], deleted=12, new=1004),
    ]
    # The second slot is a new file (a copy of the current one); then the two slots that
    # nobody holds take turns, updated in place.
    assert modes == ["copy", "incremental", "incremental", "incremental"]
    with duckdb.connect(str(settings.serving_path), read_only=True) as con:
        assert con.execute("select count(*) from customer_360 where customer_id in (10, 11, 12)"
                           " or first_name = 'New'").fetchone()[0] == 2  # fmt: skip
    assert [p.exists() for p in slot_paths(settings.serving_path)] == [True, True, False]


def test_held_slots_are_skipped_without_waiting(warehouse):
    """Readers in another process and in this one hold every earlier copy open: each
    publication still goes through at once, and each reader keeps its own copy."""
    settings, reference = warehouse
    held = [OtherProcessReader(settings.serving_path)]
    here = []
    try:
        modes = []
        for batch in range(2, 7):
            modes.append(
                publish_both(
                    settings,
                    reference,
                    batch,
                    changed=[batch],
                    deleted=20 + batch,
                    new=2000 + batch,
                )  # fmt: skip
            )
            if batch % 2:
                held.append(OtherProcessReader(settings.serving_path))
            else:
                # Attached, not `duckdb.connect(path)`: that caches one instance per path in a
                # process, which would hand the comparison below this old copy.
                con = duckdb.connect()
                con.execute(f"attach '{settings.serving_path}' as served (read_only)")
                con.execute("use served")
                here.append(con)
        assert "full" not in modes, modes
        for reader in held:
            assert reader.now() == reader.first
        counts = [con.execute("select count(*) from customer_360").fetchone()[0] for con in here]
        assert counts == [CUSTOMERS] * 3  # each batch deletes one customer and creates one
    finally:
        for reader in held:
            reader.close()
        for con in here:
            con.close()


def test_a_write_ahead_log_left_beside_a_slot_does_not_stop_publishing(warehouse, tmp_path):
    """A writer killed while it updated a slot in place leaves the slot's write-ahead log; once
    that slot is given a new file (it was held when the next publication came), the log is
    another database's: DuckDB refuses to attach the slot ("WAL does not match database
    file"), and every publication that gave the slot a new file failed ("still has a
    write-ahead log"), batch after batch (the chaos soak, 2026-12-06). Here every slot but the
    current one starts with another database's log beside it: every publication goes
    through, the copies equal a full one, and no slot in use keeps such a log."""
    settings, reference = warehouse
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("create table t as select 1 as x")
    subprocess.run(  # commits, then dies before any checkpoint: its log stays
        [sys.executable, "-c", "import duckdb, os, sys; c = duckdb.connect(sys.argv[1]);"
         " c.execute(\"set checkpoint_threshold = '10GB'\");"
         " c.execute('insert into t values (2)'); os._exit(0)", str(other)],
        check=True,
    )  # fmt: skip
    wal = other.with_name(other.name + ".wal").read_bytes()
    current = settings.serving_path.stat().st_ino
    for slot in slot_paths(settings.serving_path):
        if not slot.exists() or slot.stat().st_ino != current:
            slot.with_name(slot.name + ".wal").write_bytes(wal)
    for batch in range(2, 7):
        publish_both(settings, reference, batch, changed=[batch], deleted=20 + batch, new=3000)
    slots = [s for s in slot_paths(settings.serving_path) if s.exists()]
    assert [s.name for s in slots if s.with_name(s.name + ".wal").exists()] == []


def test_views_are_dbt_sql_re_pointed_at_the_serving_tables(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        build_synthetic_warehouse(con, 5)
        con.execute(
            "create or replace view marts.customer_activity as"
            " with recent as (select b.customer_id, b.last_website_visit_at"
            " from marts.customer_360_base as b)"
            " select recent.customer_id, 'Website Visit' as event,"
            " recent.last_website_visit_at as last_at from recent"
        )
        layout = read_layout(con)
        views = {v.name: v.sql for v in layout.views}
        assert set(views) == {"customer_360", "customer_activity", "customer_details",
                              "customer_purchase_stats"}  # fmt: skip
        assert "FROM customer_details_base" in views["customer_details"]
        assert "marts" not in " ".join(views.values())
        tables = {t.name for t in layout.tables}
        assert tables == {"customer_360_base", "customer_details_base", "customer_identities",
                          "customer_popular_items", "customer_recent_errors"}  # fmt: skip
        settings = Settings(warehouse=tmp_path / "w.duckdb")
        publish_serving_copy(con, settings, force=True)
    with duckdb.connect(str(settings.serving_path), read_only=True) as served:
        assert served.execute("select count(*) from customer_activity").fetchone()[0] == 5
        ages = served.execute("select age from customer_details order by customer_id").fetchall()
        assert all(isinstance(a[0], int) for a in ages)


def test_a_read_time_view_over_unpublished_relations_is_named(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        build_synthetic_warehouse(con, 5)
        con.execute(
            "create or replace view marts.customer_details as select c.*, 1 as age"
            " from intermediate.int_customers c join intermediate.int_weblog_rollup using"
            " (customer_id)"
        )
        with pytest.raises(LayoutError, match="marts.customer_details reads 2 relations"):
            read_layout(con)


def test_reader_process_sees_a_complete_copy(warehouse):
    settings, _ = warehouse
    out = subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only="
         "True); print(c.execute('select customers from serving_publication').fetchone()[0])",
         str(settings.serving_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == str(CUSTOMERS)


def test_slots_of_another_history_are_not_updated(tmp_path: Path):
    """A warehouse built again from scratch (its batch ids start again) at the same path: the
    slots left by the first one are rebuilt, not updated from their (higher) batch marks."""
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb")
    modes = []
    for started in ("2026-01-01 00:00:00", "2026-02-01 00:00:00"):
        settings.warehouse.unlink(missing_ok=True)
        with duckdb.connect(str(settings.warehouse)) as con:
            build_synthetic_warehouse(con, 20, batch=1)
            con.execute("create schema raw")
            con.execute(
                "create table raw._batches as select 1 as batch_id, ?::timestamp as started_at",
                [started],
            )
        for batch in (2, 3):
            with duckdb.connect(str(settings.warehouse)) as con:
                if batch == 3:
                    dbt_like_batch(con, batch, changed=[1], deleted=2, new=30)
                modes.append(publish_serving_copy(con, settings).mode)
    # The second history's first copy is a full one; the next is a copy of it (the old
    # history's slots are not updated).
    assert modes == ["full", "copy", "full", "copy"]


def test_a_slot_rewritten_many_times_over_is_copied_in_full_again(warehouse, monkeypatch):
    """In-place updates leave a slot less compact: past a number of replaced customers it is
    copied in full again (and still equals a full copy)."""
    from customer360.serving import publish

    monkeypatch.setattr(publish, "FULL_COPY_MIN", 0)
    monkeypatch.setattr(publish, "REPLACED_BEFORE_FULL_COPY", 6 / CUSTOMERS)
    settings, reference = warehouse
    changed = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 13]]
    modes = [
        publish_both(settings, reference, batch, changed=ids, deleted=100 + batch, new=500 + batch)
        for batch, ids in enumerate(changed, start=2)
    ]
    # Each update replaces 4 customers (2 changed, 1 deleted, 1 new): a slot's second update
    # would pass 6, so it is copied in full instead; copies of that one start from 0 again.
    assert modes == ["copy", "incremental", "full", "copy", "incremental"], modes


def test_a_daily_view_is_served_as_the_days_table_and_a_new_day_copies_it_in_full(
    tmp_path: Path, monkeypatch
):
    settings = Settings(warehouse=tmp_path / "w.duckdb")
    with duckdb.connect(str(settings.warehouse)) as con:
        build_synthetic_warehouse(con, 5)
        con.execute(
            "create or replace view marts.customer_traits as select customer_id,"
            " cast(timezone('UTC', now()) as date) - date '2020-01-01' as days_since"
            " from marts.customer_360_base"
        )
    served_sql = "select * from customer_traits order by customer_id"
    with duckdb.connect(str(settings.warehouse)) as con:
        layout = read_layout(con)
        assert "customer_traits" in {t.name for t in layout.tables}
        assert "customer_traits" not in {v.name for v in layout.views}
        assert publish_serving_copy(con, settings).mode == "full"
        assert not publish_serving_copy(con, settings).published, "nothing new, the same day"
        expected = con.execute(
            "select * from marts.customer_traits order by customer_id"
        ).fetchall()
        # The next day: the copy's traits would be a day old, so it is copied again in full.
        monkeypatch.setattr(layout_module, "reading_day", lambda con: "2099-01-01")
        next_day = publish_serving_copy(con, settings)
        assert next_day.published and next_day.mode == "full", next_day.summary_line()
    with duckdb.connect(str(settings.serving_path), read_only=True) as served:
        kind = served.execute(
            "select table_type from information_schema.tables where table_name = 'customer_traits'"
        ).fetchone()[0]
        assert kind == "BASE TABLE"
        assert served.execute(served_sql).fetchall() == expected
