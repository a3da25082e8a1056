"""The SQL endpoint's settings (C360_SQL_*, the password never shown) and SQL rewriting."""

from __future__ import annotations

from pathlib import Path

import pytest

from customer360.config import ConfigError, Settings, load_settings
from customer360.serving.sql_endpoint.catalog import parameter_count, rewrite, split_statements


def test_sql_settings_round_trip_and_hide_the_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        {
            "C360_SQL_HOST": "0.0.0.0",
            "C360_SQL_PORT": "15432",
            "C360_SQL_USER": "analyst",
            "C360_SQL_PASSWORD": "hunter2-secret",
            "C360_SQL_TLS_CERT": "tls/server.crt",
            "C360_SQL_TLS_KEY": "tls/server.key",
        }
    )
    assert (settings.sql_host, settings.sql_port, settings.sql_user) == (
        "0.0.0.0",
        15432,
        "analyst",
    )
    assert settings.sql_tls_cert == tmp_path / "tls" / "server.crt"
    assert "hunter2-secret" not in repr(settings)
    env = settings.environment({"C360_SQL_PASSWORD": "stale"})
    assert load_settings(env) == settings
    # A parent's password does not leak into a child whose settings have none.
    assert "C360_SQL_PASSWORD" not in Settings().environment({"C360_SQL_PASSWORD": "x"})
    assert load_settings({}).sql_port == 5433 and load_settings({}).sql_password is None
    assert Settings(sql_tls_key=Path("k")).sql_tls_key == tmp_path / "k"


@pytest.mark.parametrize("given", ["C360_SQL_TLS_CERT", "C360_SQL_TLS_KEY"])
def test_a_tls_certificate_without_its_key_or_a_key_without_its_certificate_is_refused(given):
    # The endpoint offers TLS only with both: one alone used to serve in the clear, silently.
    with pytest.raises(ConfigError, match="C360_SQL_TLS_CERT and C360_SQL_TLS_KEY go together"):
        load_settings({given: "tls/server.pem"})


@pytest.mark.parametrize("written", [False, True], ids=["missing", "not-pem"])
def test_tls_files_that_cannot_be_loaded_are_named_not_taken_for_a_busy_port(
    tmp_path, capsys, written
):
    from customer360.cli import build_parser
    from customer360.services.processes import free_port

    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    if written:
        cert.write_text("not a certificate\n")
        key.write_text("not a key\n")
    settings = Settings(warehouse=tmp_path / "w.duckdb", sql_tls_cert=cert, sql_tls_key=key)
    args = build_parser().parse_args(["sql", "--port", str(free_port())])
    assert args.func(args, settings) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"c360 sql: cannot load the TLS certificate {cert} and key {key} ")
    assert "another endpoint" not in err and len(err.splitlines()) == 1


def test_rewrite_points_catalogue_queries_at_the_endpoints_catalogue():
    oids = {"pg_class": 1259, "customer_360": 16384}
    sql = (
        "select c.relname, d.description from pg_catalog.pg_class c left join pg_description d"
        " on d.objoid = c.oid and d.classoid = 'pg_class'::regclass"
        " where c.relname like 'customer\\_360' and pg_type.oid = 20"
        " and x = 'pg_catalog.pg_class' and information_schema.columns.table_name = 'a'"
    )
    assert rewrite(sql, oids) == (
        "select c.relname, d.description from c360_pg.pg_class c left join c360_pg.pg_description d"
        " on d.objoid = c.oid and d.classoid = 1259"
        " where c.relname like 'customer\\_360' escape '\\' and c360_pg.pg_type.oid = 20"
        " and x = 'pg_catalog.pg_class' and c360_info.columns.table_name = 'a'"
    )
    assert rewrite("select version(), pg_catalog.format_type(20, -1)", oids) == (
        "select c360_pg.version(), c360_pg.format_type(20, -1)"
    )
    assert rewrite("select 'a''b'::regclass, \"pg_class\" from t", oids) == (
        'select 0, "pg_class" from t'
    )


def test_statements_split_outside_strings_and_count_parameters():
    assert split_statements("set a = 'x;y'; select 1 -- ;\n; ;show b") == [
        "set a = 'x;y'",
        "select 1 -- ;",
        "show b",
    ]
    assert parameter_count("select $1, '$5', $2 /* $9 */") == 2


def test_result_columns_are_named_as_postgresql_names_them():
    from customer360.serving.sql_endpoint.server import _column_name

    assert _column_name("count_star()") == "count"
    assert _column_name("max(as_of)") == "max"
    assert _column_name('c360_pg."version"()') == "version"
    assert _column_name("customer_id") == "customer_id"
