"""What a PostgreSQL client sees of the published serving copy: the marts and a catalogue.

The endpoint keeps one in-memory DuckDB database named `customer360` (`EndpointReader`). Each
publication of the serving file is attached read-only under a name of its own and its marts
are views in a schema of the same name (`EndpointCopy`: `customer_360`, `customer_details`, ...
and `serving_publication`; the `*_base` tables behind the age views stay hidden), which a
client knows as schema `public`. Next to them, schema `c360_pg` holds the PostgreSQL catalogue
tables drivers and BI tools query on connect and when they browse (`pg_class`, `pg_attribute`,
`pg_type`, `pg_description`, ...) and `c360_info` the `information_schema` views, filled from
the marts' columns with PostgreSQL type OIDs and with the descriptions of the dbt yml of the
marts (`dbt/models/marts/*.yml`); they are rebuilt only when the marts' columns change.
`rewrite()` points a client's `pg_catalog.*`, `information_schema.*` and `public.` references
there and adapts the few PostgreSQL idioms DuckDB lacks (`'pg_class'::regclass`, LIKE's default
backslash escape, `version()`, `COLLATE "default"`).

The instance is locked down: no file but the serving file may be opened (`allowed_paths`, with
`enable_external_access=false`, so no `read_csv('/etc/passwd')`) and no configuration change.
A client's statement reaches DuckDB only when it is a query; the server refuses the rest as a
read-only transaction.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from customer360.serving.cursor_pool import CopyCursorPool, LatestCopy
from customer360.serving.reader import ServingNotPublished, publication_identity
from customer360.serving.sql_endpoint import wire

log = logging.getLogger(__name__)

DATABASE = "customer360"
SCHEMA = "public"
CATALOG_SCHEMA = "c360_pg"
INFO_SCHEMA = "c360_info"
SERVER_VERSION = "15.0"
# The dbt project whose yml describes the marts (the checkout's dbt/ folder).
DBT_MARTS_DIR = Path(__file__).resolve().parents[3] / "dbt" / "models" / "marts"
PUBLICATION_DESCRIPTION = {
    "": "The serving copy these marts come from: one row.",
    "published_at": "When the pipeline published this copy (UTC).",
    "data_as_of": "The latest source change reflected in the copy (greatest customer_360.as_of).",
    "customers": "Customers in the copy.",
}

# Namespace and relation OIDs as in PostgreSQL; the marts get OIDs from FIRST_USER_OID on.
PG_CATALOG_OID, PUBLIC_OID, INFORMATION_SCHEMA_OID = 11, 2200, 13000
FIRST_USER_OID = 16384
SYSTEM_RELATIONS = {
    "pg_type": 1247,
    "pg_attribute": 1249,
    "pg_proc": 1255,
    "pg_class": 1259,
    "pg_attrdef": 2604,
    "pg_constraint": 2606,
    "pg_description": 2609,
    "pg_index": 2610,
    "pg_namespace": 2615,
    "pg_database": 1262,
}
ARRAY_IN = "array_in"

# (oid, typname, typlen, typcategory, typelem, typarray, typinput)
TYPES = [
    (16, "bool", 1, "B", 0, 1000, "boolin"),
    (17, "bytea", -1, "U", 0, 1001, "byteain"),
    (18, "char", 1, "Z", 0, 1002, "charin"),
    (19, "name", 64, "S", 0, 1003, "namein"),
    (20, "int8", 8, "N", 0, 1016, "int8in"),
    (21, "int2", 2, "N", 0, 1005, "int2in"),
    (23, "int4", 4, "N", 0, 1007, "int4in"),
    (25, "text", -1, "S", 0, 1009, "textin"),
    (26, "oid", 4, "N", 0, 1028, "oidin"),
    (114, "json", -1, "U", 0, 199, "json_in"),
    (700, "float4", 4, "N", 0, 1021, "float4in"),
    (701, "float8", 8, "N", 0, 1022, "float8in"),
    (705, "unknown", -2, "X", 0, 0, "unknownin"),
    (1042, "bpchar", -1, "S", 0, 1014, "bpcharin"),
    (1043, "varchar", -1, "S", 0, 1015, "varcharin"),
    (1082, "date", 4, "D", 0, 1182, "date_in"),
    (1083, "time", 8, "D", 0, 1183, "time_in"),
    (1114, "timestamp", 8, "D", 0, 1115, "timestamp_in"),
    (1184, "timestamptz", 8, "D", 0, 1185, "timestamptz_in"),
    (1186, "interval", 16, "T", 0, 1187, "interval_in"),
    (1700, "numeric", -1, "N", 0, 1231, "numeric_in"),
    (2950, "uuid", 16, "U", 0, 2951, "uuid_in"),
    (1000, "_bool", -1, "A", 16, 0, ARRAY_IN),
    (1005, "_int2", -1, "A", 21, 0, ARRAY_IN),
    (1007, "_int4", -1, "A", 23, 0, ARRAY_IN),
    (1009, "_text", -1, "A", 25, 0, ARRAY_IN),
    (1015, "_varchar", -1, "A", 1043, 0, ARRAY_IN),
    (1016, "_int8", -1, "A", 20, 0, ARRAY_IN),
    (1022, "_float8", -1, "A", 701, 0, ARRAY_IN),
    (1231, "_numeric", -1, "A", 1700, 0, ARRAY_IN),
]
TYPE_NAMES = {oid: name for oid, name, *_ in TYPES}
# information_schema.columns.data_type of each OID
SQL_TYPE_NAMES = {
    16: "boolean", 17: "bytea", 20: "bigint", 21: "smallint", 23: "integer", 25: "text",
    114: "json", 700: "real", 701: "double precision", 1043: "character varying", 1082: "date",
    1083: "time without time zone", 1114: "timestamp without time zone",
    1184: "timestamp with time zone", 1186: "interval", 1700: "numeric", 2950: "uuid",
}  # fmt: skip


@dataclass(frozen=True)
class Relation:
    oid: int
    name: str
    kind: str  # 'r' a table, 'v' a view
    description: str | None
    # (name, DuckDB type, type OID, type modifier, description)
    columns: tuple[tuple[str, str, int, int, str | None], ...]


def mart_descriptions(marts_dir: Path = DBT_MARTS_DIR) -> dict[str, dict[str, str]]:
    """{model: {"": model description, column: description}} from the marts' dbt yml.

    A column the model's yml leaves undescribed takes the description of the same column of
    `<model>_base` (customer_360 is a view over customer_360_base, whose yml documents it).
    """
    models: dict[str, dict[str, str]] = {}
    for path in sorted(marts_dir.glob("*.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        for model in document.get("models") or []:
            described = models.setdefault(model["name"], {})
            if model.get("description"):
                described[""] = " ".join(str(model["description"]).split())
            for column in model.get("columns") or []:
                if column.get("description"):
                    described[column["name"]] = " ".join(str(column["description"]).split())
    for name, described in models.items():
        for column, text in models.get(f"{name}_base", {}).items():
            if column:
                described.setdefault(column, text)
    models[PUBLICATION_TABLE] = PUBLICATION_DESCRIPTION
    return models


PUBLICATION_TABLE = "serving_publication"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _values(rows: list[tuple]) -> str:
    return ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)


def _create_table(con, name: str, columns: str, rows: list[tuple]) -> None:
    con.execute(f"create table {name} ({columns})")
    if rows:
        con.execute(f"insert into {name} values {_values(rows)}")


def _relations(con, alias: str, descriptions: dict[str, dict[str, str]]) -> list[Relation]:
    """The marts of the publication attached as `alias`, with PostgreSQL types and descriptions."""
    objects = con.execute(
        "select table_name, 'r' from duckdb_tables() where database_name = ?"
        " and schema_name = 'main' union all"
        " select view_name, 'v' from duckdb_views() where database_name = ?"
        " and schema_name = 'main' and not internal order by 1",
        [alias, alias],
    ).fetchall()
    names = {name for name, _ in objects}
    relations = []
    for name, kind in objects:
        if name.endswith("_base") and name[: -len("_base")] in names:
            continue  # the table behind an age view
        described = descriptions.get(name, {})
        columns = []
        for column, data_type in con.execute(
            "select column_name, data_type from duckdb_columns() where database_name = ?"
            " and schema_name = 'main' and table_name = ? order by column_index",
            [alias, name],
        ).fetchall():
            oid, modifier = wire.pg_type(data_type)
            columns.append((column, data_type, oid, modifier, described.get(column)))
        relations.append(
            Relation(FIRST_USER_OID + len(relations), name, kind, described.get(""), tuple(columns))
        )
    return relations


class EndpointCopy(CopyCursorPool):
    """One publication of the serving file, attached read-only to the endpoint's database.

    The file is attached as `pub_<n>` and its marts are views in schema `customer360.pub_<n>`;
    a cursor of this copy has that schema as its default, and `rewrite()` turns a client's
    `public.` into it. Opening one costs an attach and a few views (~10 ms), whatever the data
    size; the catalogue is shared by all copies and rebuilt only when the marts' columns change.
    Its cursors are pooled and a transaction pins it (cursor_pool.py): once a newer copy is
    served and no cursor or transaction uses this one, it is detached.
    """

    def __init__(self, reader: EndpointReader, number: int, identity: tuple):
        super().__init__(identity)
        self.reader = reader
        self.schema = f"pub_{number}"
        reader.open_publication(self)
        self.class_oids = reader.class_oids

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self.reader.new_cursor()
        cur.execute(f"use {DATABASE}.{self.schema}")
        return cur

    def _close(self) -> None:
        self.reader.close_publication(self)


class EndpointReader:
    """The endpoint's DuckDB database: the catalogue, and the latest publication attached.

    One in-memory DuckDB instance for the endpoint's life: database `customer360` holds the
    catalogue (schemas `c360_pg`, `c360_info`) and one schema of views per open publication.
    The serving file is the only file it may open (`allowed_paths`); file access is otherwise
    off and the configuration locked, so a client's query cannot reach anything else.
    """

    def __init__(self, path: Path, marts_dir: Path = DBT_MARTS_DIR):
        self.path = Path(path).absolute()
        self.descriptions = mart_descriptions(marts_dir)
        self.con = duckdb.connect(":memory:", config={"threads": 1})
        self.con.execute(f"attach ':memory:' as {DATABASE}")
        self.con.execute(f"use {DATABASE}")
        allowed = ", ".join(_literal(str(self.path) + suffix) for suffix in ("", ".wal"))
        self.con.execute(f"set allowed_paths = [{allowed}]")
        self.con.execute("set enable_external_access = false")
        self.con.execute("set lock_configuration = true")
        self.relations: list[Relation] = []
        self.class_oids: dict[str, int] = dict(SYSTEM_RELATIONS)
        self._signature: tuple | None = None
        self._ddl = threading.Lock()  # DDL on the shared connection, one at a time
        self._numbers = itertools.count(1)
        self._latest: LatestCopy[EndpointCopy] = LatestCopy(
            self._identity, lambda identity: EndpointCopy(self, next(self._numbers), identity)
        )

    def new_cursor(self) -> duckdb.DuckDBPyConnection:
        with self._ddl:
            return self.con.cursor()

    def open_publication(self, copy: EndpointCopy) -> None:
        path_sql = str(self.path).replace("'", "''")
        with self._ddl:
            self.con.execute(f"attach '{path_sql}' as {copy.schema} (read_only)")
            try:
                relations = _relations(self.con, copy.schema, self.descriptions)
                signature = tuple((r.name, r.kind, r.columns) for r in relations)
                if signature != self._signature:
                    self.con.execute(f"drop schema if exists {CATALOG_SCHEMA} cascade")
                    self.con.execute(f"drop schema if exists {INFO_SCHEMA} cascade")
                    _build_catalog(self.con, relations)
                    self.relations, self._signature = relations, signature
                    self.class_oids = {r.name: r.oid for r in relations} | SYSTEM_RELATIONS
                self.con.execute(f"create schema {DATABASE}.{copy.schema}")
                for relation in relations:
                    name = _quote(relation.name)
                    self.con.execute(
                        f"create view {DATABASE}.{copy.schema}.{name} as"
                        f" select * from {copy.schema}.main.{name}"
                    )
            except BaseException:
                self.con.execute(f"drop schema if exists {DATABASE}.{copy.schema} cascade")
                self.con.execute(f"detach {copy.schema}")
                raise

    def close_publication(self, copy: EndpointCopy) -> None:
        with self._ddl:
            try:
                self.con.execute(f"drop schema if exists {DATABASE}.{copy.schema} cascade")
                self.con.execute(f"detach {copy.schema}")
            except duckdb.Error as exc:
                log.warning("could not detach publication %s: %s", copy.schema, exc)

    def _identity(self) -> tuple:
        try:
            return publication_identity(self.path)
        except ServingNotPublished as exc:
            raise wire.SqlError(
                f"no serving copy at {self.path} yet: the pipeline publishes one after its first"
                " micro-batch (`c360 run-once` or `c360 up`)",
                "57P03",
            ) from exc

    def current(self) -> EndpointCopy:
        """The latest publication, attached on first use."""
        return self._latest.current()

    def pinned(self) -> EndpointCopy:
        """The latest publication, pinned for a transaction (unpin it when the transaction ends)."""
        return self._latest.pinned()

    def close(self) -> None:
        copy = self._latest.forget()
        if copy is not None:
            copy.retire()
        with self._ddl:
            self.con.close()


def _build_catalog(con, relations: list[Relation]) -> None:
    con.execute(f"create schema {CATALOG_SCHEMA}")
    con.execute(f"create schema {INFO_SCHEMA}")
    c = CATALOG_SCHEMA
    _create_table(
        con,
        f"{c}.pg_namespace",
        "oid bigint, nspname varchar, nspowner bigint, nspacl varchar",
        [(PG_CATALOG_OID, "pg_catalog", 10, None), (PUBLIC_OID, SCHEMA, 10, None),
         (INFORMATION_SCHEMA_OID, "information_schema", 10, None)],
    )  # fmt: skip
    classes = [(r.oid, r.name, PUBLIC_OID, r.kind, len(r.columns)) for r in relations] + [
        (oid, name, PG_CATALOG_OID, "r", 0) for name, oid in SYSTEM_RELATIONS.items()
    ]
    _create_table(
        con,
        f"{c}.pg_class",
        "oid bigint, relname varchar, relnamespace bigint, reltype bigint, reloftype bigint,"
        " relowner bigint, relam bigint, relfilenode bigint, reltablespace bigint,"
        " relpages integer, reltuples float, relallvisible integer, reltoastrelid bigint,"
        " relhasindex boolean, relisshared boolean, relpersistence varchar, relkind varchar,"
        " relnatts smallint, relchecks smallint, relhasoids boolean, relhasrules boolean,"
        " relhastriggers boolean, relhassubclass boolean, relrowsecurity boolean,"
        " relforcerowsecurity boolean, relispopulated boolean, relreplident varchar,"
        " relispartition boolean, relrewrite bigint, relfrozenxid bigint, relminmxid bigint,"
        " relacl varchar, reloptions varchar[], relpartbound varchar",
        [(oid, name, nsp, 0, 0, 10, 0, oid, 0, 0, -1.0, 0, 0, False, False, "p", kind,
          natts, 0, False, False, False, False, False, False, True, "d", False, 0, 0, 0,
          None, None, None) for oid, name, nsp, kind, natts in classes],
    )  # fmt: skip
    attributes, descriptions, info_columns = [], [], []
    for r in relations:
        if r.description:
            descriptions.append((r.oid, SYSTEM_RELATIONS["pg_class"], 0, r.description))
        for number, (name, _, oid, modifier, text) in enumerate(r.columns, start=1):
            length = wire.TYPE_LENGTHS.get(oid, -1)
            attributes.append(
                (r.oid, name, oid, -1, length, number, 0, -1, modifier, length > 0, "x",
                 "i", False, False, False, "", "", False, True, 0, 0, None, None, None, "")
            )  # fmt: skip
            if text:
                descriptions.append((r.oid, SYSTEM_RELATIONS["pg_class"], number, text))
            precision = scale = None
            if oid == wire.NUMERIC and modifier > 0:
                precision, scale = (modifier - 4) >> 16, (modifier - 4) & 0xFFFF
            elif oid in (wire.INT2, wire.INT4, wire.INT8):
                precision, scale = {21: 16, 23: 32, 20: 64}[oid], 0
            elif oid in (wire.FLOAT4, wire.FLOAT8):
                precision = 24 if oid == wire.FLOAT4 else 53
            info_columns.append(
                (DATABASE, SCHEMA, r.name, name, number, None, "YES",
                 SQL_TYPE_NAMES.get(oid, TYPE_NAMES.get(oid, "text")), None, None,
                 precision, 10 if oid == wire.NUMERIC else (2 if precision else None), scale,
                 6 if oid in (1083, 1114, 1184) else None, DATABASE, "pg_catalog",
                 TYPE_NAMES.get(oid, "text"), "NO", text)
            )  # fmt: skip
    _create_table(
        con,
        f"{c}.pg_attribute",
        "attrelid bigint, attname varchar, atttypid bigint, attstattarget integer,"
        " attlen smallint, attnum smallint, attndims integer, attcacheoff integer,"
        " atttypmod integer, attbyval boolean, attstorage varchar, attalign varchar,"
        " attnotnull boolean, atthasdef boolean, atthasmissing boolean,"
        " attidentity varchar, attgenerated varchar, attisdropped boolean,"
        " attislocal boolean, attinhcount integer, attcollation bigint, attacl varchar,"
        " attoptions varchar, attfdwoptions varchar, attcompression varchar",
        attributes,
    )
    _create_table(
        con,
        f"{c}.pg_description",
        "objoid bigint, classoid bigint, objsubid integer, description varchar",
        descriptions,
    )
    _create_table(
        con,
        f"{c}.pg_type",
        "oid bigint, typname varchar, typnamespace bigint, typowner bigint, typlen smallint,"
        " typbyval boolean, typtype varchar, typcategory varchar, typispreferred boolean,"
        " typisdefined boolean, typdelim varchar, typrelid bigint, typelem bigint,"
        " typarray bigint, typinput varchar, typoutput varchar, typreceive varchar,"
        " typsend varchar, typmodin varchar, typmodout varchar, typanalyze varchar,"
        " typalign varchar, typstorage varchar, typnotnull boolean, typbasetype bigint,"
        " typtypmod integer, typndims integer, typcollation bigint, typdefaultbin varchar,"
        " typdefault varchar, typacl varchar",
        [(oid, name, PG_CATALOG_OID, 10, length, 0 < length <= 8, "b", category, False,
          True, ",", 0, elem, array, typinput, typinput.replace("in", "out"), "-", "-", "-",
          "-", "-", "i", "p" if length > 0 else "x", False, 0, -1, 0, 0, None, None, None)
         for oid, name, length, category, elem, array, typinput in TYPES],
    )  # fmt: skip
    _create_table(
        con,
        f"{c}.pg_database",
        "oid bigint, datname varchar, datdba bigint, encoding integer, datcollate varchar,"
        " datctype varchar, datistemplate boolean, datallowconn boolean,"
        " datconnlimit integer, dattablespace bigint, datacl varchar",
        [(16383, DATABASE, 10, 6, "C.UTF-8", "C.UTF-8", False, True, -1, 1663, None)],
    )
    _create_table(
        con,
        f"{c}.pg_roles",
        "oid bigint, rolname varchar, rolsuper boolean, rolinherit boolean,"
        " rolcreaterole boolean, rolcreatedb boolean, rolcanlogin boolean,"
        " rolreplication boolean, rolconnlimit integer, rolvaliduntil timestamp,"
        " rolbypassrls boolean, rolconfig varchar",
        [(10, "c360", False, True, False, False, True, False, -1, None, False, None)],
    )
    con.execute(
        f"create view {c}.pg_user as select rolname as usename, oid as usesysid,"
        f" rolcreatedb as usecreatedb, rolsuper as usesuper from {c}.pg_roles"
    )
    for name, columns in (
        ("pg_attrdef", "oid bigint, adrelid bigint, adnum smallint, adbin varchar"),
        ("pg_index", "indexrelid bigint, indrelid bigint, indnatts smallint,"
         " indnkeyatts smallint, indisunique boolean, indisprimary boolean,"
         " indisexclusion boolean, indimmediate boolean, indisclustered boolean,"
         " indisvalid boolean, indkey smallint[], indclass bigint[], indoption smallint[],"
         " indexprs varchar, indpred varchar"),
        ("pg_constraint", "oid bigint, conname varchar, connamespace bigint,"
         " contype varchar, condeferrable boolean, condeferred boolean,"
         " convalidated boolean, conrelid bigint, contypid bigint, conindid bigint,"
         " confrelid bigint, confupdtype varchar, confdeltype varchar,"
         " confmatchtype varchar, conkey integer[], confkey integer[], conbin varchar"),
        ("pg_proc", "oid bigint, proname varchar, pronamespace bigint, proowner bigint,"
         " prolang bigint, prokind varchar, proretset boolean, prorettype bigint,"
         " pronargs smallint, proargtypes varchar, proargnames varchar[], prosrc varchar"),
        ("pg_inherits", "inhrelid bigint, inhparent bigint, inhseqno integer,"
         " inhdetachpending boolean"),
        ("pg_enum", "oid bigint, enumtypid bigint, enumsortorder float, enumlabel varchar"),
        ("pg_range", "rngtypid bigint, rngsubtype bigint"),
        ("pg_extension", "oid bigint, extname varchar, extowner bigint,"
         " extnamespace bigint, extversion varchar"),
        ("pg_trigger", "oid bigint, tgrelid bigint, tgname varchar"),
        ("pg_rewrite", "oid bigint, rulename varchar, ev_class bigint"),
        ("pg_depend", "classid bigint, objid bigint, objsubid integer, refclassid bigint,"
         " refobjid bigint, refobjsubid integer, deptype varchar"),
        ("pg_foreign_table", "ftrelid bigint, ftserver bigint"),
        ("pg_am", "oid bigint, amname varchar, amhandler varchar, amtype varchar"),
        ("pg_collation", "oid bigint, collname varchar, collnamespace bigint"),
        ("pg_tablespace", "oid bigint, spcname varchar, spcowner bigint"),
        ("pg_policy", "oid bigint, polname varchar, polrelid bigint, polcmd varchar,"
         " polpermissive boolean, polroles bigint[], polqual varchar, polwithcheck varchar"),
        ("pg_statistic_ext", "oid bigint, stxrelid bigint, stxname varchar,"
         " stxnamespace bigint, stxowner bigint, stxstattarget integer, stxkeys smallint[],"
         " stxkind varchar[]"),
        ("pg_publication", "oid bigint, pubname varchar, puballtables boolean"),
        ("pg_partitioned_table", "partrelid bigint, partstrat varchar, partnatts smallint,"
         " partattrs smallint[], partexprs varchar"),
        ("pg_publication_rel", "oid bigint, prpubid bigint, prrelid bigint, prattrs smallint[],"
         " prqual varchar"),
        ("pg_publication_namespace", "oid bigint, pnpubid bigint, pnnspid bigint"),
    ):  # fmt: skip
        _create_table(con, f"{c}.{name}", columns, [])
    _create_table(
        con,
        f"{c}.pg_settings",
        "name varchar, setting varchar, unit varchar, category varchar,"
        " short_desc varchar, context varchar, vartype varchar",
        [(name, value, None, "", "", "user", "string")
         for name, value in SERVER_SETTINGS.items()],
    )  # fmt: skip
    tables = [r for r in relations if r.kind == "r"]
    views = [r for r in relations if r.kind == "v"]
    con.execute(
        f"create view {c}.pg_tables as select '{SCHEMA}' as schemaname, relname as tablename,"
        " 'c360' as tableowner, null::varchar as tablespace, false as hasindexes,"
        f" false as hasrules, false as hastriggers, false as rowsecurity from {c}.pg_class"
        f" where relkind = 'r' and relnamespace = {PUBLIC_OID}"
    )
    con.execute(
        f"create view {c}.pg_views as select '{SCHEMA}' as schemaname, relname as viewname,"
        " 'c360' as viewowner, null::varchar as definition from"
        f" {c}.pg_class where relkind = 'v' and relnamespace = {PUBLIC_OID}"
    )
    con.execute(f"create view {c}.pg_matviews as select * from {c}.pg_views where false")
    i = INFO_SCHEMA
    _create_table(
        con,
        f"{i}.schemata",
        "catalog_name varchar, schema_name varchar, schema_owner varchar,"
        " default_character_set_catalog varchar, default_character_set_schema varchar,"
        " default_character_set_name varchar, sql_path varchar",
        [(DATABASE, SCHEMA, "c360", None, None, None, None),
         (DATABASE, "pg_catalog", "c360", None, None, None, None),
         (DATABASE, "information_schema", "c360", None, None, None, None)],
    )  # fmt: skip
    _create_table(
        con,
        f"{i}.tables",
        "table_catalog varchar, table_schema varchar, table_name varchar,"
        " table_type varchar, self_referencing_column_name varchar,"
        " reference_generation varchar, user_defined_type_catalog varchar,"
        " user_defined_type_schema varchar, user_defined_type_name varchar,"
        " is_insertable_into varchar, is_typed varchar, commit_action varchar,"
        " table_comment varchar",
        [(DATABASE, SCHEMA, r.name, "BASE TABLE" if r.kind == "r" else "VIEW", None, None,
          None, None, None, "NO", "NO", None, r.description) for r in tables + views],
    )  # fmt: skip
    _create_table(
        con,
        f"{i}.columns",
        "table_catalog varchar, table_schema varchar, table_name varchar,"
        " column_name varchar, ordinal_position integer, column_default varchar,"
        " is_nullable varchar, data_type varchar, character_maximum_length integer,"
        " character_octet_length integer, numeric_precision integer,"
        " numeric_precision_radix integer, numeric_scale integer,"
        " datetime_precision integer, udt_catalog varchar, udt_schema varchar,"
        " udt_name varchar, is_updatable varchar, column_comment varchar",
        info_columns,
    )
    _create_table(
        con,
        f"{i}.views",
        "table_catalog varchar, table_schema varchar, table_name varchar,"
        " view_definition varchar, check_option varchar, is_updatable varchar,"
        " is_insertable_into varchar",
        [(DATABASE, SCHEMA, r.name, None, "NONE", "NO", "NO") for r in views],
    )
    # PostgreSQL's functions tools call, where DuckDB's differ or read its own catalogue.
    description = f"{c}.pg_description"
    for macro in (
        f"col_description(rel, col) as (select description from {description}"
        " where objoid = rel and objsubid = col)",
        f"obj_description(obj, cls := 'pg_class') as (select description from {description}"
        " where objoid = obj and objsubid = 0)",
        "format_type(type_oid, type_mod) as (select case when typname = 'numeric' and"
        " type_mod > 4 then 'numeric(' || ((type_mod - 4) >> 16) || ',' ||"
        " ((type_mod - 4) & 65535) || ')' else coalesce(map_extract_value("
        + "map {"
        + ", ".join(f"'{TYPE_NAMES[o]}': '{n}'" for o, n in SQL_TYPE_NAMES.items())
        + "}, typname), typname) end from "
        + f"{c}.pg_type where oid = type_oid)",
        "pg_get_expr(expr, rel, pretty := false) as null::varchar",
        "pg_get_userbyid(role) as 'c360'",
        "pg_get_viewdef(rel, pretty := false) as null::varchar",
        "pg_get_indexdef(rel, col := 0, pretty := false) as null::varchar",
        "pg_get_constraintdef(con, pretty := false) as null::varchar",
        "pg_get_statisticsobjdef_columns(obj) as null::varchar",
        "pg_get_triggerdef(obj, pretty := false) as null::varchar",
        "pg_get_ruledef(obj, pretty := false) as null::varchar",
        "pg_get_partkeydef(obj) as null::varchar",
        "pg_relation_is_publishable(obj) as false",
        "pg_total_relation_size(rel) as 0::bigint",
        "pg_relation_size(rel, fork := 'main') as 0::bigint",
        "pg_table_size(rel) as 0::bigint",
        "pg_indexes_size(rel) as 0::bigint",
        "pg_encoding_to_char(code) as 'UTF8'",
        "pg_table_is_visible(rel) as true",
        "pg_type_is_visible(rel) as true",
        "pg_function_is_visible(rel) as true",
        f"version() as 'PostgreSQL {SERVER_VERSION} (customer360 SQL endpoint over DuckDB"
        f" {duckdb.__version__})'",
        f"current_schemas(implicit) as ['{SCHEMA}']",
        f"current_schema() as '{SCHEMA}'",
        "current_user() as 'c360'",
        "session_user() as 'c360'",
        f"current_setting(setting_name, missing_ok := false) as (select setting from"
        f" {c}.pg_settings where name = setting_name)",
        "has_table_privilege(a, b, c := null) as true",
        "has_schema_privilege(a, b, c := null) as true",
        "has_database_privilege(a, b, c := null) as true",
        "array_upper(arr, dim) as len(arr)",
        "array_lower(arr, dim) as case when len(arr) > 0 then 1 end",
        "pg_backend_pid() as 0",
        "txid_current() as 0",
    ):
        con.execute(f"create macro {c}.{macro}")
    # pgJDBC's getPrimaryKeys / getImportedKeys expand index and constraint keys with it.
    con.execute(
        f"create macro {i}._pg_expandarray(arr) as unnest(list_transform("
        "range(1, len(arr) + 1), lambda k: {'x': arr[k], 'n': k}))"
    )


# -- settings a client may SHOW -----------------------------------------------------------------

SERVER_SETTINGS = {
    "server_version": SERVER_VERSION,
    "server_version_num": "150000",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "TimeZone": "UTC",
    "IntervalStyle": "postgres",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "transaction_isolation": "read committed",
    "default_transaction_isolation": "read committed",
    "transaction_read_only": "on",
    "default_transaction_read_only": "on",
    "search_path": f'"$user", {SCHEMA}',
    "max_identifier_length": "63",
    "max_index_keys": "32",
    "lc_collate": "C.UTF-8",
    "lc_ctype": "C.UTF-8",
    "extra_float_digits": "1",
    "statement_timeout": "0",
    "application_name": "",
    "is_superuser": "off",
    "in_hot_standby": "off",
    "ssl": "off",
}


# -- rewriting a client's SQL for DuckDB --------------------------------------------------------

CATALOG_TABLES = (
    "pg_namespace pg_class pg_attribute pg_description pg_type pg_database pg_roles pg_user"
    " pg_attrdef pg_index pg_constraint pg_proc pg_inherits pg_enum pg_range pg_extension"
    " pg_trigger pg_rewrite pg_depend pg_foreign_table pg_am pg_collation pg_tablespace"
    " pg_settings pg_tables pg_views pg_matviews pg_policy pg_statistic_ext pg_publication_rel"
    " pg_publication_namespace pg_publication pg_partitioned_table"
).split()
INFO_TABLES = ("schemata", "tables", "columns", "views", "_pg_expandarray")
CATALOG_FUNCTIONS = (
    "col_description obj_description format_type pg_get_expr pg_get_userbyid pg_get_viewdef"
    " pg_get_indexdef pg_get_constraintdef pg_get_statisticsobjdef_columns pg_get_triggerdef"
    " pg_get_ruledef pg_get_partkeydef pg_relation_is_publishable pg_encoding_to_char"
    " pg_total_relation_size pg_relation_size pg_table_size pg_indexes_size"
    " pg_table_is_visible pg_type_is_visible pg_function_is_visible version current_schemas"
    " current_schema"
    " current_setting has_table_privilege has_schema_privilege has_database_privilege"
    " array_upper array_lower pg_backend_pid txid_current"
).split()
# current_user / session_user are keywords in PostgreSQL: used without parentheses.
KEYWORD_FUNCTIONS = ("current_user", "session_user", "current_role")

_NAMES = {
    "TABLES": "|".join(CATALOG_TABLES),
    "INFO": "|".join(INFO_TABLES),
    "FUNCTIONS": "|".join(CATALOG_FUNCTIONS),
    "KEYWORDS": "|".join(KEYWORD_FUNCTIONS),
}
_TOKEN_PATTERN = r"""
    (?P<like>\b(?:not\s+)?i?like\s+)(?P<pattern>[eE]'(?:[^'\\]|''|\\.)*'|'(?:[^']|'')*')
        (?P<escape>\s*escape\b)?
  | (?P<string>[eE]'(?:[^'\\]|''|\\.)*'|'(?:[^']|'')*')
        (?P<cast>\s*::\s*(?:pg_catalog\s*\.\s*)?
            (?:regclass|regproc|regprocedure|regtype|regnamespace)\b)?
  | (?P<public>(?<![\w.])(?:(?:customer360|"customer360")\s*\.\s*)?(?:public|"public")\s*\.)
  | (?P<ident>"(?:[^"]|"")*")
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<dollar>\$(?:[A-Za-z_]\w*)?\$.*?\$(?:[A-Za-z_]\w*)?\$)
  | (?P<regcast>::\s*(?:pg_catalog\s*\.\s*)?
        (?:regclass|regproc|regprocedure|regtype|regnamespace)\b)
  | (?P<namecast>::\s*(?:pg_catalog\s*\.\s*)?(?:name|"char")(?![\w"]))
  | (?P<collate>\bcollate\s+(?:pg_catalog\s*\.\s*)?(?:"[^"]*"|\w+))
  | (?P<operator>operator\s*\(\s*pg_catalog\s*\.\s*(?P<op>[^)\s]+)\s*\))
  | (?P<table>(?<![\w.])(?:pg_catalog\s*\.\s*)?(?P<tname>TABLES)\b(?!\s*\())
  | (?P<info>(?<![\w.])information_schema\s*\.\s*(?P<iname>INFO)\b)
  | (?P<function>(?<![\w.])(?:pg_catalog\s*\.\s*)?(?P<fname>FUNCTIONS)\s*\()
  | (?P<keyword>(?<![\w.])(?:KEYWORDS)\b(?!\s*[(.]))
  | (?P<prefix>(?<![\w.])pg_catalog\s*\.\s*)
"""
_TOKENS = re.compile(
    re.sub(r"\b(TABLES|INFO|FUNCTIONS|KEYWORDS)\b", lambda m: _NAMES[m.group(1)], _TOKEN_PATTERN),
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


def _unquote(literal: str) -> str:
    if literal[0] in "eE":
        literal = literal[1:]
    return literal[1:-1].replace("''", "'")


def rewrite(sql: str, class_oids: dict[str, int], schema: str = SCHEMA) -> str:
    """A client's PostgreSQL query, as DuckDB runs it against this endpoint's catalogue, with
    `public.` (the marts' schema for the client) pointing at the publication's `schema`."""

    def replace(m: re.Match) -> str:
        kind = m.lastgroup
        if m.group("like") is not None:
            if m.group("escape"):
                return m.group(0)
            return f"{m.group('like')}{m.group('pattern')} escape '\\'"
        if m.group("string") is not None:
            cast = m.group("cast")
            if not cast:
                return m.group(0)
            target = cast.split("::")[1].split(".")[-1].strip().lower()
            value = _unquote(m.group("string"))
            bare = value.split(".")[-1].strip('"')
            if target == "regclass":
                return str(class_oids.get(bare, 0))
            if target == "regtype":
                return str(next((o for o, n in TYPE_NAMES.items() if n == bare), 0))
            if target == "regnamespace":
                return str({"pg_catalog": 11, SCHEMA: 2200}.get(bare, 0))
            return _literal(bare)
        if m.group("public") is not None:
            return f"{schema}."
        if m.group("regcast") is not None:
            return ""
        if m.group("namecast") is not None:
            return "::varchar"
        if m.group("collate") is not None:
            return ""  # DuckDB's collations are not PostgreSQL's; "default" is what it means
        if m.group("operator") is not None:
            return f" {m.group('op')} "
        if m.group("table") is not None:
            return f"{CATALOG_SCHEMA}.{m.group('tname').lower()}"
        if m.group("info") is not None:
            return f"{INFO_SCHEMA}.{m.group('iname').lower()}"
        if m.group("function") is not None:
            return f"{CATALOG_SCHEMA}.{m.group('fname').lower()}("
        if m.group("keyword") is not None:
            return "'c360'"
        if m.group("prefix") is not None:
            return ""  # pg_catalog.<other function or cast>: DuckDB's own
        del kind
        return m.group(0)

    return _TOKENS.sub(replace, sql)


_SPLIT = re.compile(
    r"""[eE]'(?:[^'\\]|''|\\.)*'|'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/"""
    r"""|\$(?:[A-Za-z_]\w*)?\$.*?\$(?:[A-Za-z_]\w*)?\$|(?P<semicolon>;)""",
    re.DOTALL,
)


def split_statements(sql: str) -> list[str]:
    """A simple query's statements, split on semicolons outside strings and comments."""
    statements, start = [], 0
    for m in _SPLIT.finditer(sql):
        if m.group("semicolon"):
            statements.append(sql[start : m.start()])
            start = m.end()
    statements.append(sql[start:])
    return [s.strip() for s in statements if s.strip()]


_PARAM = re.compile(
    r"""[eE]'(?:[^'\\]|''|\\.)*'|'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/"""
    r"""|\$(?P<number>\d+)""",
    re.DOTALL,
)


def parameter_count(sql: str) -> int:
    """The highest $n placeholder of a statement."""
    numbers = [int(m.group("number")) for m in _PARAM.finditer(sql) if m.group("number")]
    return max(numbers, default=0)


def strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL).strip()
