"""The SQL endpoint (PostgreSQL protocol) from real clients, over a published serving copy.

No Kafka or MongoDB: the serving copy is published from a warehouse with contract-shaped marts
(`build_synthetic_warehouse`, 50 customers). The clients are the ones BI tools use: psqlODBC
through unixODBC (pyodbc), PostgreSQL's JDBC driver (tests/jdbc/BiCatalog.java) and libpq
(psycopg). `tests/test_bi_postgres_live.py` reads the endpoint while micro-batches publish.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal

import duckdb
import psycopg
import pyodbc
import pytest
import yaml

from customer360.config import Settings
from customer360.services.processes import free_port
from customer360.serving import publish_serving_copy
from customer360.serving.benchmark import build_synthetic_warehouse
from customer360.serving.sql_endpoint import SqlEndpoint, UnsafeSqlBind
from customer360.serving.sql_endpoint.catalog import DBT_MARTS_DIR
from tests.bi_clients import (
    compile_java_clients,
    jdbc_url,
    odbc_connection_string,
    psycopg_conninfo,
)

PASSWORD = "Tr0ub4dor-and-3"
MARTS = {
    "customer_360",
    "customer_activity",
    "customer_details",
    "customer_identities",
    "customer_popular_items",
    "customer_purchase_stats",
    "customer_recent_errors",
    "serving_publication",
}


def publish(settings: Settings, batch: int) -> None:
    """(Re)builds the synthetic marts (as_of = 2026-01-01 + batch seconds) and publishes them."""
    with duckdb.connect(str(settings.warehouse)) as con:
        build_synthetic_warehouse(con, customers=50, batch=batch)
        publish_serving_copy(con, settings, force=True)


def serving_rows(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.serving_path), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def bi_settings(tmp_path) -> Settings:
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", sql_password=PASSWORD)
    publish(settings, batch=1)
    return settings


@pytest.fixture
def endpoint(bi_settings):
    with SqlEndpoint(bi_settings, port=0) as endpoint:
        yield endpoint


def connect(endpoint, **extra) -> psycopg.Connection:
    settings = endpoint.settings
    return psycopg.connect(
        psycopg_conninfo(endpoint.port, settings.sql_user, settings.sql_password, **extra),
        autocommit=True,
    )


def test_odbc_lists_the_marts_and_reads_them_as_the_serving_copy_holds_them(endpoint):
    settings = endpoint.settings
    con = pyodbc.connect(
        odbc_connection_string(endpoint.port, settings.sql_user, PASSWORD), timeout=10
    )
    cur = con.cursor()
    tables = {(t.table_schem, t.table_name, t.table_type) for t in cur.tables(schema="public")}
    assert {name for _, name, _ in tables} == MARTS
    assert ("public", "customer_360", "VIEW") in tables
    # dbt's views over customer_360_base stay views in the serving copy (publish.py, layout.py)
    assert ("public", "customer_purchase_stats", "VIEW") in tables
    columns = [c.column_name for c in cur.columns(table="customer_purchase_stats")]
    assert columns == [
        "customer_id", "channel", "number_of_orders", "number_of_items_purchased",
        "items_per_order", "amount_spent",
    ]  # fmt: skip

    # Every row of two marts, through the driver's types, equals the serving copy.
    sql = "select * from customer_purchase_stats order by customer_id, channel"
    assert [tuple(r) for r in cur.execute(sql).fetchall()] == serving_rows(settings, sql)
    sql = "select * from customer_360 order by customer_id"
    assert [tuple(r) for r in cur.execute(sql).fetchall()] == serving_rows(settings, sql)
    # A parameterised query (psqlODBC binds it as a server-side prepared statement).
    row = cur.execute(
        "select first_name, total_amount_spent from customer_360 where customer_id = ?", 7
    ).fetchone()
    assert tuple(row) == ("First7", Decimal("150.75"))
    assert cur.execute("show transaction_isolation").fetchone()[0] == "read committed"
    con.close()


def test_the_catalogue_shows_the_dbt_descriptions(endpoint):
    """Table and column comments come from dbt/models/marts/*.yml, read here independently."""
    documented = {}
    for path in DBT_MARTS_DIR.glob("*.yml"):
        for model in yaml.safe_load(path.read_text())["models"]:
            documented[model["name"]] = model
    purchase_stats = documented["customer_purchase_stats"]
    described = {
        c["name"]: " ".join(c["description"].split())
        for c in purchase_stats["columns"]
        if c.get("description")
    }
    assert described, "the dbt yml of customer_purchase_stats describes columns"
    with connect(endpoint) as con:
        table_comment = con.execute(
            "select obj_description('public.customer_purchase_stats'::regclass, 'pg_class')"
        ).fetchone()[0]
        assert table_comment == " ".join(purchase_stats["description"].split())
        # psql's \d+ / DBeaver style: pg_attribute joined with col_description.
        comments = dict(
            con.execute(
                "select a.attname, pg_catalog.col_description(a.attrelid, a.attnum)"
                " from pg_catalog.pg_attribute a join pg_catalog.pg_class c"
                " on c.oid = a.attrelid join pg_catalog.pg_namespace n"
                " on n.oid = c.relnamespace where n.nspname = 'public'"
                " and c.relname = 'customer_purchase_stats' and a.attnum > 0"
            ).fetchall()
        )
        assert {k: v for k, v in comments.items() if v} == described
        # information_schema lists the same columns with PostgreSQL type names.
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = 'public' and table_name = 'customer_purchase_stats'"
            ).fetchall()
        )
        assert types["amount_spent"] == "numeric"
        assert types["channel"] == "character varying"
        # customer_360 documents `age` itself and takes `as_of`'s from customer_360_base.
        age_comment = con.execute(
            "select d.description from pg_description d join pg_class c on c.oid = d.objoid"
            " join pg_attribute a on a.attrelid = c.oid and a.attnum = d.objsubid"
            " where c.relname = 'customer_360' and a.attname = 'as_of'"
        ).fetchone()[0]
        base_as_of = next(
            c for c in documented["customer_360_base"]["columns"] if c["name"] == "as_of"
        )
        assert age_comment == " ".join(base_as_of["description"].split())


def test_jdbc_browses_prepares_reads_and_is_refused_writes_and_a_wrong_password(endpoint, tmp_path):
    classpath = compile_java_clients(tmp_path)
    env = dict(os.environ, C360_SQL_USER="bi", C360_SQL_PASSWORD=PASSWORD)
    result = subprocess.run(
        ["java", "-cp", classpath, "BiCatalog", jdbc_url(endpoint.port)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    by_kind: dict[str, list[list[str]]] = {}
    for kind, *fields in lines:
        by_kind.setdefault(kind, []).append(fields)
    assert by_kind["product"] == [["PostgreSQL", "15.0"]]
    assert ["public"] in by_kind["schema"]
    tables = {name: (kind, remarks) for name, kind, remarks in by_kind["table"]}
    assert set(tables) == MARTS
    assert tables["customer_360"][0] == "VIEW"
    assert tables["customer_popular_items"][1].startswith("What each customer buys")
    columns = {(t, c): (type_name, remarks) for t, c, type_name, remarks in by_kind["column"]}
    assert columns[("customer_purchase_stats", "amount_spent")] == (
        "numeric",
        "Sum of price x quantity over the line items (exact decimal).",
    )
    assert columns[("customer_360", "customer_id")][0] == "int8"
    # The prepared statement ran 8 times: from the 5th, pgJDBC reads the results in binary;
    # every row equals the serving copy's.
    expected = serving_rows(
        endpoint.settings,
        "select customer_id, first_name, dob, epoch_ms(as_of), total_amount_spent, total_orders,"
        " age from customer_360 where customer_id <= 8 order by customer_id",
    )
    assert [
        (int(i), name, dob, int(ms), Decimal(amount), int(orders), int(age))
        for i, name, dob, ms, amount, orders, age in by_kind["row"]
    ] == [(i, n, str(d), ms, a, o, age) for i, n, d, ms, a, o, age in expected]
    decimals = [
        "0.05", "-0.07", "0.001", "0." + "0" * 37 + "1", "12.05", "1" + "0" * 20,
        "9" * 32 + "." + "9" * 6, "-0.000001", "0.00",
    ]  # fmt: skip
    assert by_kind["decimals"] == [decimals] * 6  # text, then binary: the same numbers
    assert by_kind["show"] == [["read committed"]]
    assert by_kind["isolation"] == [["2"]]  # Connection.TRANSACTION_READ_COMMITTED
    assert by_kind["in_transaction"] == [["100"]]
    assert "written" not in by_kind
    assert {(what, state) for what, state in by_kind["refused"]} == {
        ("delete from customer_360", "25006"),
        ("create table t (a int)", "25006"),
        ("update customer_purchase_stats set amount_spent = 0", "25006"),
        ("wrong password", "28P01"),
    }


def test_a_read_only_login_cannot_write_or_reach_files(endpoint):
    with connect(endpoint) as con:
        for statement in (
            "insert into customer_purchase_stats values (1, 'x', 1, 1, 1, 1)",
            "update customer_360 set first_name = 'x'",
            "delete from customer_recent_errors",
            "drop view customer_360",
            "create table notes (a int)",
            "attach '/tmp/other.duckdb' as other",
            "copy customer_360 to '/tmp/out.csv'",
            "install httpfs",
            "pragma database_list",
            "call pragma_version()",
            # EXPLAIN ANALYZE runs what it explains: only a query may be explained, else the
            # endpoint's catalogue (shared by every client) could be rewritten.
            "explain analyze create or replace view customer_360 as select 1 as customer_id",
            "explain analyze delete from information_schema.tables",
            "EXPLAIN ANALYZE /* c */ drop table pg_catalog.pg_class",
            "explain (analyze) insert into pg_catalog.pg_namespace values (1, 'x', 1, null)",
            "explain (format json, analyze) update information_schema.columns set data_type = 'x'",
            "explain analyze (format json) create table notes (a int)",
            "explain delete from customer_recent_errors",
            "explain analyze with x as (select 1) delete from information_schema.tables",
        ):
            with pytest.raises(psycopg.Error) as refused:
                con.execute(statement)
            assert refused.value.sqlstate == "25006", (statement, refused.value)
        for query in (
            "explain select * from customer_360",
            "explain analyze select count(*) from customer_details",
            "explain analyze (select 1)",
            "explain (format json) with x as (select 1) select * from x",
        ):
            assert con.execute(query).fetchall(), query
        assert con.execute("select count(*) from customer_360").fetchone() == (50,)
        assert con.execute(
            "select count(*) from information_schema.tables where table_name = 'customer_360'"
        ).fetchone() == (1,)
        with pytest.raises(psycopg.Error) as refused:
            con.execute("select * from read_csv('/etc/passwd')")
        assert refused.value.sqlstate == "42501"
        # SET is the session's own: it cannot unlock DuckDB's file access.
        con.execute("set enable_external_access = true")
        with pytest.raises(psycopg.Error):
            con.execute("select * from read_text('/etc/hostname')")
        assert con.execute("select count(*) from customer_details").fetchone()[0] == 50


def test_prepared_statements_show_set_and_binary_results(endpoint):
    with connect(endpoint) as con:
        # Server-side prepared statements (Parse / Bind / Execute), results in binary.
        cur = con.cursor(binary=True)
        for customer_id in (3, 4, 5):
            cur.execute(
                "select customer_id, total_amount_spent, as_of, dob, first_name"
                " from customer_360 where customer_id = %s",
                (customer_id,),
                prepare=True,
            )
            row = cur.fetchone()
            assert row[0] == customer_id and row[1] == Decimal("150.75")
            assert row[4] == f"First{customer_id}"
        # SQL-level PREPARE / EXECUTE / DEALLOCATE.
        con.execute(
            "prepare by_id (bigint) as select email from customer_details where customer_id = $1"
        )
        assert con.execute("execute by_id (9)").fetchone() == ("user9@example.com",)
        con.execute("deallocate by_id")
        with pytest.raises(psycopg.Error):
            con.execute("execute by_id (9)")
        # SET / SHOW / RESET, and what tools ask on connect.
        con.execute("set search_path to public")
        con.execute("set application_name = 'report'")
        assert con.execute("show application_name").fetchone() == ("report",)
        assert con.execute("show server_version").fetchone() == ("15.0",)
        assert con.execute("show standard_conforming_strings").fetchone() == ("on",)
        # SHOW's phrases (pgJDBC's getTransactionIsolation, DBeaver on connect), in both
        # protocols.
        for prepare in (False, True):
            cur = con.execute("SHOW TRANSACTION ISOLATION LEVEL", prepare=prepare)
            assert cur.fetchone() == ("read committed",)
            assert cur.description[0].name == "transaction_isolation"
            assert con.execute("show time zone;", prepare=prepare).fetchone() == ("UTC",)
        con.execute("set time zone 'Europe/Paris'")
        assert con.execute("show time zone").fetchone() == ("Europe/Paris",)
        assert con.execute("show timezone").fetchone() == ("Europe/Paris",)
        con.execute("reset all")
        assert con.execute("select current_database(), current_schema()").fetchone() == (
            "customer360",
            "public",
        )
        assert con.execute("select version()").fetchone()[0].startswith("PostgreSQL 15.0")
        assert con.execute(
            "select count(*) from pg_catalog.pg_tables where schemaname = 'public'"
        ).fetchone() == (4,)  # customer_identities, customer_popular_items,
        # customer_recent_errors, serving_publication
        # A LIKE pattern with PostgreSQL's default escape (backslash).
        assert con.execute(
            r"select relname from pg_class where relname like 'customer\_360'"
        ).fetchall() == [("customer_360",)]


def test_decimals_read_in_binary_are_the_numbers_sent_in_text(endpoint):
    """psycopg decodes binary NUMERIC itself (PostgreSQL's format): small fractions kept their
    leading zeros only in text once (0.05 read as 0.50 in binary)."""
    values = (
        "0.05::decimal(10,2)", "-0.07::decimal(10,2)", "0.001::decimal(10,3)",
        "1e-38::decimal(38,38)", "-1e-38::decimal(38,38)", "0.10::decimal(10,2)",
        "12.05::decimal(10,2)", "100::decimal(10,0)", "1e20::decimal(38,0)",
        "99999999999999999999999999999999.999999::decimal(38,6)",
        "-99999999999999999999999999999999.999999::decimal(38,6)", "0::decimal(10,2)",
        "total_amount_spent",
    )  # fmt: skip
    sql = f"select {', '.join(values)} from customer_360 where customer_id = %s"
    with connect(endpoint) as con:
        text = con.cursor().execute(sql, (7,)).fetchone()
        binary = con.cursor(binary=True).execute(sql, (7,), prepare=True).fetchone()
    assert binary == text
    assert [str(v) for v in binary[:3]] == ["0.05", "-0.07", "0.001"]
    assert binary[3] == Decimal("1e-38") and binary[-1] == Decimal("150.75")


def test_arrays_and_text_asked_in_binary_come_in_binary(endpoint):
    """Arrays were sent as text in a column labelled binary (psycopg then read garbage); psycopg
    takes the first column's format for all, so every column asked in binary is binary."""
    sql = (
        "select first_name, [customer_id, 2]::bigint[] as ids, ['x', 'y z', null] as names,"
        " [1.50::decimal(10,2), 0.05] as amounts, [dob] as dobs, 0.05::decimal(10,2) as amount"
        " from customer_360 where customer_id = %s"
    )
    with connect(endpoint) as con:
        text = con.cursor().execute(sql, (7,)).fetchone()
        binary = con.cursor(binary=True).execute(sql, (7,), prepare=True).fetchone()
    assert binary[:4] == ("First7", [7, 2], ["x", "y z", None], [Decimal("1.50"), Decimal("0.05")])
    assert binary == text and binary[-1] == Decimal("0.05")


SLOW_QUERY = "select count(*) from range(10000000000) a where a % 7 = 3"


def test_statement_timeout_interrupts_a_long_query(endpoint):
    """SET statement_timeout was accepted and ignored: a query now stops after it, 57014."""
    with connect(endpoint) as con:
        con.execute("set statement_timeout = '300ms'")
        assert con.execute("show statement_timeout").fetchone() == ("300ms",)
        for prepare in (False, True):
            started = time.monotonic()
            with pytest.raises(psycopg.Error) as stopped:
                con.execute(SLOW_QUERY, prepare=prepare)
            assert stopped.value.sqlstate == "57014"
            assert "statement timeout" in str(stopped.value)
            assert time.monotonic() - started < 10
        # the session goes on, and a quick query is not interrupted afterwards
        assert con.execute("select count(*) from customer_360").fetchone() == (50,)
        time.sleep(0.5)
        assert con.execute("select 1").fetchone() == (1,)
        with pytest.raises(psycopg.Error) as refused:
            con.execute("set statement_timeout = 'soon'")
        assert refused.value.sqlstate == "22023"
        con.execute("reset statement_timeout")
        assert con.execute("show statement_timeout").fetchone() == ("0",)
        con.execute("set statement_timeout to 1")  # milliseconds
        with pytest.raises(psycopg.Error) as stopped:
            con.execute(SLOW_QUERY)
        assert stopped.value.sqlstate == "57014"
        con.execute("set statement_timeout to default")
        assert con.execute("select count(*) from range(3000000)").fetchone() == (3000000,)


def test_a_transaction_keeps_one_publication_and_the_next_sees_the_new_one(endpoint):
    settings = endpoint.settings
    with connect(endpoint) as con:
        as_of = "select max(as_of) from customer_360"
        first = con.execute(as_of).fetchone()[0]
        con.autocommit = False
        with con.transaction():
            assert con.execute(as_of).fetchone()[0] == first
            publish(settings, batch=5)  # a micro-batch publishes meanwhile
            # Still the copy the transaction started on, in every table.
            assert con.execute(as_of).fetchone()[0] == first
            assert con.execute("select data_as_of from serving_publication").fetchone()[0] == first
        later = con.execute(as_of).fetchone()[0]
        con.commit()
        assert (later - first).total_seconds() == 4


def test_a_wrong_password_is_refused_and_no_password_reaches_the_log(bi_settings, tmp_path):
    """`c360 sql` as a user starts it, verbose: its whole log holds neither password."""
    port = free_port()
    settings = bi_settings.with_overrides(sql_port=port)
    log_path = tmp_path / "sql.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "customer360.cli", "-v", "sql"],
            env=settings.environment(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "SQL endpoint" not in log_path.read_text():
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        wrong = "wr0ng-Passw0rd-xyz"
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(psycopg_conninfo(port, "bi", wrong))
        assert "password authentication failed" in str(refused.value)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(psycopg_conninfo(port, "postgres", PASSWORD))
        with pytest.raises(pyodbc.Error) as odbc_refused:
            pyodbc.connect(odbc_connection_string(port, "bi", wrong), timeout=10)
        assert "password authentication failed" in str(odbc_refused.value)
        with psycopg.connect(psycopg_conninfo(port, "bi", PASSWORD)) as con:
            assert con.execute("select count(*) from customer_360").fetchone() == (50,)
    finally:
        server.terminate()
        server.wait(timeout=30)
    logged = log_path.read_text()
    assert "refused a login" in logged and "password authentication failed" in logged
    for secret in (PASSWORD, wrong, PASSWORD[:8], wrong[:8]):
        assert secret not in logged
    assert PASSWORD not in repr(settings)


def test_only_loopback_without_a_password(tmp_path):
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb")
    with pytest.raises(UnsafeSqlBind):
        SqlEndpoint(settings, host="0.0.0.0", port=0)
    result = subprocess.run(
        [sys.executable, "-m", "customer360.cli", "sql", "--host", "0.0.0.0"],
        env=settings.environment(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "C360_SQL_PASSWORD" in result.stderr
    # Without a password, only the configured user gets in (on loopback).
    publish(settings, batch=1)
    with SqlEndpoint(settings, port=0) as endpoint:
        with psycopg.connect(psycopg_conninfo(endpoint.port, "bi", None)) as con:
            assert con.execute("select customers from serving_publication").fetchone() == (50,)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(psycopg_conninfo(endpoint.port, "admin", None))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_when_a_certificate_is_given(bi_settings, tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    settings = bi_settings.with_overrides(sql_tls_cert=cert, sql_tls_key=key)
    with SqlEndpoint(settings, port=0) as endpoint:
        with connect(endpoint, sslmode="require") as con:
            assert con.info.pgconn.ssl_in_use
            assert con.execute("select count(*) from customer_360").fetchone() == (50,)


def test_the_readme_odbc_dsn_connects(endpoint, tmp_path, monkeypatch):
    """The DSN of the README's "Connect your BI tool" section, with this endpoint's port."""
    readme = (DBT_MARTS_DIR.parents[2] / "README.md").read_text()
    section = readme[readme.index("## Connect your BI tool") :]
    dsn = section[
        section.index("```ini") + len("```ini") : section.index("```", section.index("```ini") + 6)
    ]
    assert "[customer360]" in dsn
    (tmp_path / "odbc.ini").write_text(
        dsn.replace("5433", str(endpoint.port)).replace("<password>", PASSWORD)
    )
    monkeypatch.setenv("ODBCINI", str(tmp_path / "odbc.ini"))
    with pyodbc.connect("DSN=customer360", timeout=10) as con:
        tables = {t.table_name for t in con.cursor().tables(schema="public")}
        assert tables == MARTS


def test_each_publication_is_attached_once_and_detached_when_unused(endpoint):
    settings = endpoint.settings
    with connect(endpoint) as reading, connect(endpoint) as holding:
        holding.autocommit = False
        held = holding.execute("select data_as_of from serving_publication").fetchone()
        for batch in (2, 3, 4):
            publish(settings, batch=batch)
            assert reading.execute("select count(*) from customer_360").fetchone() == (50,)
        # The open transaction still reads its publication; the one in between is gone.
        assert holding.execute("select data_as_of from serving_publication").fetchone() == held
        attached = {
            name
            for (name,) in endpoint.reader.con.execute(
                "select database_name from duckdb_databases() where database_name like 'pub_%'"
            ).fetchall()
        }
        assert attached == {"pub_1", "pub_4"}
        holding.rollback()
        assert reading.execute("select count(*) from customer_360").fetchone() == (50,)
        attached = endpoint.reader.con.execute(
            "select database_name from duckdb_databases() where database_name like 'pub_%'"
        ).fetchall()
        assert attached == [("pub_4",)]


def test_what_dbeaver_asks_when_it_browses(endpoint):
    """Queries of the shape DBeaver's PostgreSQL driver sends (schemas, tables, columns, types)."""
    with connect(endpoint) as con:
        assert con.execute("select current_schema(), session_user").fetchone() == (
            "public",
            "c360",
        )
        namespaces = con.execute(
            "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n"
            " LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0"
            " AND d.classoid='pg_namespace'::regclass ORDER BY nspname"
        ).fetchall()
        assert [row[2] for row in namespaces] == ["information_schema", "pg_catalog", "public"]
        public = con.execute(
            "select oid from pg_catalog.pg_namespace where nspname = 'public'"
        ).fetchone()[0]
        tables = con.execute(
            "SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,"
            "d.description, case when c.relkind='p' then e.expr else null end as partition_expr"
            " FROM pg_catalog.pg_class c"
            " LEFT OUTER JOIN pg_catalog.pg_class t ON t.oid=c.reltoastrelid"
            " LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.reloftype"
            " LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0"
            " and d.classoid='pg_class'::regclass LEFT OUTER JOIN (select"
            " pg_catalog.pg_get_expr(p.partexprs, p.partrelid) as expr, p.partrelid"
            " from pg_catalog.pg_partitioned_table p) e ON e.partrelid=c.oid"
            " WHERE c.relnamespace=%s AND c.relkind not in ('i','I','c')",
            (public,),
        ).fetchall()
        assert len(tables) == len(MARTS)
        sizes = con.execute(
            "select c.oid,pg_catalog.pg_total_relation_size(c.oid) as total_rel_size,"
            "pg_catalog.pg_relation_size(c.oid) as rel_size FROM pg_class c"
            " WHERE c.relnamespace=%s",
            (public,),
        ).fetchall()
        assert len(sizes) == len(MARTS)
        oid = con.execute("select 'customer_360'::regclass").fetchone()[0]
        columns = con.execute(
            "SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as"
            " def_value,dsc.description,dep.objid FROM pg_catalog.pg_attribute a"
            " INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)"
            " LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid"
            " AND a.attnum = ad.adnum) LEFT OUTER JOIN pg_catalog.pg_description dsc"
            " ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)"
            " LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i'"
            " and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid"
            " WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid=%s"
            " ORDER BY a.attnum",
            (oid,),
        ).fetchall()
        assert [row[2] for row in columns][:3] == ["customer_id", "first_name", "last_name"]
        types = con.execute(
            "SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod)"
            " as base_type_name, d.description FROM pg_catalog.pg_type t"
            " LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem"
            " LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid"
            " LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid"
            " WHERE t.typname IS NOT NULL AND (c.relkind IS NULL OR c.relkind = 'c')"
            " AND (et.typcategory IS NULL OR et.typcategory <> 'C')"
        ).fetchall()
        assert {"int8", "numeric", "varchar", "timestamp"} <= {row[2] for row in types}


def test_cursors_declare_fetch_close(endpoint):
    """psqlODBC's UseDeclareFetch (Excel's large sheets) reads through DECLARE / FETCH."""
    settings = endpoint.settings
    sql = "select * from customer_popular_items order by customer_id, product_name"
    expected = serving_rows(settings, sql)
    odbc = odbc_connection_string(endpoint.port, settings.sql_user, PASSWORD)
    with pyodbc.connect(odbc + "UseDeclareFetch=1;Fetch=64;", timeout=10) as con:
        assert [tuple(r) for r in con.cursor().execute(sql).fetchall()] == expected
    with connect(endpoint) as con:
        con.autocommit = False
        con.execute(f"declare items cursor for {sql}")
        first = con.execute("fetch 3 from items").fetchall()
        assert [tuple(r) for r in first] == expected[:3]
        assert con.execute("fetch next in items").fetchone() == expected[3]
        assert len(con.execute("fetch all from items").fetchall()) == len(expected) - 4
        con.execute("close items")
        with pytest.raises(psycopg.Error):
            con.execute("fetch 1 from items")
        con.rollback()
