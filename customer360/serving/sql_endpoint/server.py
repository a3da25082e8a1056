"""The SQL endpoint: a PostgreSQL-protocol server over the published serving copy.

One thread per client connection (`socketserver.ThreadingTCPServer`; DuckDB releases the GIL
while a query runs). A connection authenticates once (SCRAM-SHA-256 when C360_SQL_PASSWORD is
set, else trust on a loopback address only), then every query runs on a cursor of the copy
published last (`EndpointReader`, `EndpointCopy` in catalog.py): a statement outside a
transaction block sees the newest complete publication, a `BEGIN ... COMMIT` block (and an
extended-protocol batch up to its Sync) keeps the copy it started on, so a client never sees
half a batch or two batches mixed.
The pipeline is never blocked: readers only open the files it has already renamed into place.

Read-only: queries (SELECT, WITH, VALUES, EXPLAIN of a query) reach DuckDB; SET, SHOW, RESET,
DISCARD, transaction control and SQL-level PREPARE / EXECUTE / DEALLOCATE are answered by the
session; anything else is refused with SQLSTATE 25006 like a read-only PostgreSQL transaction.

The log names connections, logins refused and failed statements' SQLSTATE; never a password, a
query's text or its parameters (they may carry a customer's name or email).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import secrets
import socket
import socketserver
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from customer360.config import Settings
from customer360.serving.cli import is_loopback
from customer360.serving.sql_endpoint import wire
from customer360.serving.sql_endpoint.catalog import (
    SERVER_SETTINGS,
    EndpointCopy,
    EndpointReader,
    parameter_count,
    rewrite,
    split_statements,
    strip_comments,
)

log = logging.getLogger(__name__)

FETCH_ROWS = 1000
QUERY_WORDS = ("select", "with", "values", "table", "explain", "describe", "summarize", "(")
# Parameters the server reports at startup (pgJDBC requires DateStyle ISO and UTF8).
REPORTED_SETTINGS = (
    "server_version", "server_encoding", "client_encoding", "DateStyle", "TimeZone",
    "IntervalStyle", "integer_datetimes", "standard_conforming_strings", "is_superuser",
    "default_transaction_read_only", "in_hot_standby",
)  # fmt: skip


class UnsafeSqlBind(ValueError):
    """Binding a non-loopback address without a password would expose personal data."""


class SqlTlsUnusable(ValueError):
    """The files C360_SQL_TLS_CERT and C360_SQL_TLS_KEY name cannot be loaded."""


def check_sql_bind(settings: Settings, host: str) -> None:
    if not is_loopback(host) and not settings.sql_password:
        raise UnsafeSqlBind(
            f"refusing to serve customer data over SQL on {host} without a password: set "
            "C360_SQL_PASSWORD (BI tools then log in as C360_SQL_USER with it), or bind 127.0.0.1"
        )


def _sqlstate_of(exc: Exception) -> str:
    return exc.sqlstate if isinstance(exc, wire.SqlError) else _sqlstate(exc)


def _sqlstate(exc: duckdb.Error) -> str:
    for kind, state in (
        (duckdb.ParserException, "42601"),
        (duckdb.CatalogException, "42P01"),
        (duckdb.BinderException, "42703"),
        (duckdb.PermissionException, "42501"),
        (duckdb.ConversionException, "22P02"),
        (duckdb.InvalidInputException, "22023"),
        (duckdb.OutOfRangeException, "22003"),
        (duckdb.InterruptException, "57014"),
    ):
        if isinstance(exc, kind):
            return state
    return "XX000"


_FUNCTION_CALL = re.compile(r'^(?:"?\w+"?\.)?"?(\w+)"?\(.*\)$', re.S)


def _column_name(name: str) -> str:
    """A result column as PostgreSQL names it: an unnamed call is named after its function
    (`count(*)` is `count`, not DuckDB's `count_star()`; `max(as_of)` is `max`)."""
    match = _FUNCTION_CALL.match(name)
    if match is None or match.group(1).upper() == "CAST":
        return name
    function = match.group(1).lower()
    return "count" if function == "count_star" else function


# `explain`, then `analyze` / `verbose` or a parenthesised option list (PostgreSQL's and
# DuckDB's option names only: `explain analyze (select 1)` explains a parenthesised query).
_EXPLAIN_PREFIX = re.compile(
    r"\s*explain\b(?:\s*(?:analy[sz]e\b|verbose\b|\(\s*(?:analy[sz]e|verbose|costs|settings"
    r"|buffers|wal|timing|summary|format|generic_plan|memory|serialize)\b[^()]*\)))*",
    re.I,
)


def _explained(sql: str) -> str:
    """The statement an EXPLAIN shows (and with ANALYZE runs), without its EXPLAIN prefix."""
    while match := _EXPLAIN_PREFIX.match(sql):
        sql = sql[match.end() :]
    return sql


def _not_a_read(cur: duckdb.DuckDBPyConnection, statements: list) -> str | None:
    """What kind of statement this is when it is not one read-only query, else None.

    EXPLAIN ANALYZE runs the statement it explains, so an EXPLAIN is a read only when the
    statement inside is one: `explain analyze delete ...` would delete from the endpoint's
    catalogue, which every client shares.
    """
    if len(statements) != 1:
        return "MULTI" if statements else "this"
    kind = statements[0].type
    if kind == duckdb.StatementType.EXPLAIN:
        inner = cur.extract_statements(_explained(strip_comments(statements[0].query)))
        inner_kind = _not_a_read(cur, inner)
        return None if inner_kind is None else f"EXPLAIN of {inner_kind}"
    return None if kind == duckdb.StatementType.SELECT else kind.name


# SHOW's names of more than one word, and the settings they show (PostgreSQL's grammar).
_SHOW_PHRASES = {
    "transaction isolation level": "transaction_isolation",
    "time zone": "TimeZone",
}


def _shown_setting(sql: str) -> str:
    """The setting a SHOW statement names: `show transaction isolation level` (pgJDBC's
    getTransactionIsolation, DBeaver on connect) is transaction_isolation."""
    words = sql.strip().rstrip(";").split()[1:]
    phrase = " ".join(words).lower()
    return _SHOW_PHRASES.get(phrase, words[0].strip('"') if words else "")


# statement_timeout's units, as PostgreSQL reads them (a bare number is milliseconds).
_TIME_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def _timeout_ms(value: str) -> float:
    """statement_timeout's value in milliseconds (0: no timeout); a wrong one is refused."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*", value.lower())
    if match is None:
        raise wire.SqlError(f'invalid value for parameter "statement_timeout": "{value}"', "22023")
    return float(match.group(1)) * _TIME_UNITS_MS[match.group(2) or "ms"]


def _first_word(sql: str) -> str:
    match = re.match(r"\s*([A-Za-z_]+|\()", sql)
    return match.group(1).lower() if match else ""


@dataclass
class Prepared:
    sql: str
    param_oids: list[int]


@dataclass
class Result:
    """A statement's outcome: rows to stream from a cursor, or just a command tag."""

    tag: str
    columns: list[wire.Column] | None = None
    rows: Iterator[tuple] | None = None
    close: Any = None
    sent: int = 0
    # The DuckDB cursor the rows come from: what a cancel or a statement timeout interrupts.
    cursor: duckdb.DuckDBPyConnection | None = None


@dataclass
class Portal:
    statement: Prepared
    params: list[Any]
    result_formats: list[int]
    result: Result | None = None
    formats: list[int] = field(default_factory=list)


class Session:
    """One client connection: startup, authentication, then queries until it leaves."""

    def __init__(self, sock: socket.socket, endpoint: SqlEndpoint, client: str):
        self.sock = sock
        self.endpoint = endpoint
        self.client = client
        self.out = bytearray()
        self.pid = next(endpoint.pids)
        self.secret = secrets.randbits(32)
        self.settings: dict[str, str] = {}
        self.statements: dict[str, Prepared] = {}
        self.sql_prepared: dict[str, str] = {}
        # DECLARE ... CURSOR: name -> (its result, WITH HOLD); read by FETCH, ended by CLOSE.
        self.cursors: dict[str, tuple[Result, bool]] = {}
        self.portals: dict[str, Portal] = {}
        self.transaction = b"I"  # I idle, T in a block, E failed block
        self.pinned: EndpointCopy | None = None
        self.skip_until_sync = False
        self.running: duckdb.DuckDBPyConnection | None = None
        self.user = ""

    # -- bytes in and out ----------------------------------------------------------------------

    def _recv(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError("client went away")
            data += chunk
        return bytes(data)

    def read_message(self) -> tuple[bytes, bytes]:
        kind = self._recv(1)
        (length,) = struct.unpack("!i", self._recv(4))
        if length < 4 or length > 256 * 1024 * 1024:
            raise wire.ProtocolError(f"bad message length {length}")
        return kind, self._recv(length - 4)

    def send(self, data: bytes) -> None:
        self.out += data
        if len(self.out) > 65536:
            self.flush()

    def flush(self) -> None:
        if self.out:
            self.sock.sendall(self.out)
            self.out.clear()

    def fatal(self, error: wire.SqlError) -> None:
        error.severity = "FATAL"
        self.send(wire.error_response(error))
        self.flush()

    # -- startup and login ---------------------------------------------------------------------

    def startup(self) -> bool:
        while True:
            (length,) = struct.unpack("!i", self._recv(4))
            if length < 8 or length > 10000:
                raise wire.ProtocolError("bad startup packet")
            body = self._recv(length - 4)
            (code,) = struct.unpack("!i", body[:4])
            if code == wire.SSL_REQUEST:
                if self.endpoint.tls is not None:
                    self.sock.sendall(b"S")
                    self.sock = self.endpoint.tls.wrap_socket(self.sock, server_side=True)
                else:
                    self.sock.sendall(b"N")
                continue
            if code == wire.GSSENC_REQUEST:
                self.sock.sendall(b"N")
                continue
            if code == wire.CANCEL_REQUEST:
                pid, secret = struct.unpack("!iI", body[4:12])
                self.endpoint.cancel(pid, secret)
                return False
            if code != wire.PROTOCOL_3:
                self.fatal(wire.SqlError("unsupported frontend protocol", "0A000"))
                return False
            break
        parts = body[4:].split(b"\x00")
        params = {
            k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
            for k, v in zip(parts[::2], parts[1::2], strict=False)
            if k
        }
        self.user = params.get("user", "")
        if not self.authenticate():
            return False
        self.settings["application_name"] = params.get("application_name", "")
        for name in REPORTED_SETTINGS:
            self.send(wire.parameter_status(name, SERVER_SETTINGS[name]))
        self.send(wire.parameter_status("application_name", self.settings["application_name"]))
        self.send(wire.parameter_status("session_authorization", self.user))
        self.send(wire.backend_key_data(self.pid, self.secret))
        self.send(wire.ready_for_query(b"I"))
        self.flush()
        log.debug("sql session %d: %s logged in from %s", self.pid, self.user, self.client)
        return True

    def authenticate(self) -> bool:
        expected = self.endpoint.settings.sql_user
        verifier = self.endpoint.verifier
        if verifier is None:
            if self.user != expected:
                self.refuse(wire.SqlError(f'role "{self.user}" does not exist', "28000"))
                return False
            self.send(wire.authentication(0))
            return True
        self.send(wire.authentication(10, b"SCRAM-SHA-256\x00\x00"))
        self.flush()
        kind, body = self.read_message()
        reader = wire.Reader(body)
        if kind != b"p" or reader.cstring() != "SCRAM-SHA-256":
            self.refuse(wire.SqlError("SCRAM-SHA-256 authentication expected", "28000"))
            return False
        exchange = wire.ScramExchange(verifier)
        client_first = reader.raw(reader.int32()).decode("utf-8")
        self.send(wire.authentication(11, exchange.server_first_message(client_first).encode()))
        self.flush()
        kind, body = self.read_message()
        final = exchange.server_final_message(body.decode("utf-8")) if kind == b"p" else None
        if final is None or self.user != expected:
            self.refuse(
                wire.SqlError(f'password authentication failed for user "{self.user}"', "28P01")
            )
            return False
        self.send(wire.authentication(12, final.encode()))
        self.send(wire.authentication(0))
        return True

    def refuse(self, error: wire.SqlError) -> None:
        log.warning("sql endpoint: refused a login from %s: %s", self.client, error.message)
        self.fatal(error)

    # -- the message loop ----------------------------------------------------------------------

    def run(self) -> None:
        if not self.startup():
            return
        while True:
            kind, body = self.read_message()
            if kind == b"X":
                return
            if self.skip_until_sync and kind not in (b"S", b"Q"):
                continue
            try:
                if kind == b"Q":
                    self.simple_query(wire.Reader(body).cstring())
                elif kind == b"P":
                    self.parse(body)
                elif kind == b"B":
                    self.bind(body)
                elif kind == b"D":
                    with self.statement_timeout():  # describing a portal runs its statement
                        self.describe(body)
                elif kind == b"E":
                    with self.statement_timeout():
                        self.execute(body)
                elif kind == b"C":
                    self.close(body)
                elif kind == b"S":
                    self.sync()
                elif kind == b"H":
                    self.flush()
                else:
                    raise wire.ProtocolError(f"unexpected message {kind!r}")
            except (wire.SqlError, duckdb.Error, ValueError, KeyError, IndexError) as exc:
                # A statement that failed, or one this endpoint cannot handle: the client gets
                # an error and the session goes on (never the statement's text in the log).
                error = (
                    exc
                    if isinstance(exc, wire.SqlError)
                    else wire.SqlError(
                        f"{type(exc).__name__}: {exc}",
                        _sqlstate(exc) if isinstance(exc, duckdb.Error) else "XX000",
                    )
                )
                self.fail(error)
                self.skip_until_sync = kind != b"Q"
                if kind == b"Q":
                    self.end_of_batch()
                    self.send(wire.ready_for_query(self.transaction))
                    self.flush()

    def fail(self, error: wire.SqlError) -> None:
        log.info("sql session %d: statement failed, SQLSTATE %s", self.pid, error.sqlstate)
        self.send(wire.error_response(error))
        if self.transaction == b"T":
            self.transaction = b"E"

    def end_of_batch(self) -> None:
        """The end of an implicit transaction (a simple query, or a Sync outside a block)."""
        if self.transaction == b"I":
            self.close_portals()
            self.unpin()

    def unpin(self) -> None:
        if self.pinned is not None:
            self.pinned.unpin()
            self.pinned = None

    def close_portals(self) -> None:
        for portal in self.portals.values():
            if portal.result is not None and portal.result.close is not None:
                portal.result.close()
        self.portals.clear()

    # -- simple query --------------------------------------------------------------------------

    def simple_query(self, sql: str) -> None:
        statements = split_statements(sql)
        if not statements:
            self.send(wire.message(b"I"))
        for statement in statements:
            with self.statement_timeout():
                self.simple_statement(statement)
        self.end_of_batch()
        self.send(wire.ready_for_query(self.transaction))
        self.flush()

    def simple_statement(self, statement: str) -> None:
        result = self.run_statement(Prepared(statement, []), [])
        if result.columns is not None:
            formats = [0] * len(result.columns)
            self.send(wire.row_description(result.columns, formats))
            self.send_rows(result, formats, 0)
        else:
            self.send(wire.command_complete(result.tag))

    @contextlib.contextmanager
    def statement_timeout(self) -> Iterator[None]:
        """statement_timeout, enforced as PostgreSQL does: a statement still running (or still
        sending its rows) in this message after that long is interrupted, SQLSTATE 57014."""
        milliseconds = _timeout_ms(self.settings.get("statement_timeout", "0"))
        if not milliseconds:
            yield
            return
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            self.cancel()

        timer = threading.Timer(milliseconds / 1000, expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        except (wire.SqlError, duckdb.InterruptException) as exc:
            if expired.is_set() and _sqlstate_of(exc) == "57014":
                message = "canceling statement due to statement timeout"
                raise wire.SqlError(message, "57014") from exc
            raise
        finally:
            timer.cancel()

    def send_rows(self, result: Result, formats: list[int], max_rows: int) -> bool:
        """Streams rows; True when the portal is suspended at max_rows with rows left."""
        encoders = [
            wire.encoder(c.type_oid, f) for c, f in zip(result.columns, formats, strict=True)
        ]
        self.running = result.cursor  # rows stream from it: a cancel or timeout stops it
        try:
            for row in result.rows:
                self.send(wire.data_row(row, encoders))
                result.sent += 1
                if max_rows and result.sent % max_rows == 0:
                    self.send(wire.message(b"s"))
                    return True
        except duckdb.Error as exc:
            if result.close is not None:
                result.close()
            raise wire.SqlError(str(exc), _sqlstate(exc)) from exc
        finally:
            self.running = None
        if result.close is not None:
            result.close()
            result.close = None
        self.send(wire.command_complete(f"{result.tag} {result.sent}"))
        return False

    # -- extended query ------------------------------------------------------------------------

    def parse(self, body: bytes) -> None:
        reader = wire.Reader(body)
        name, sql = reader.cstring(), reader.cstring()
        oids = [reader.int32() for _ in range(reader.int16())]
        statements = split_statements(sql)
        if len(statements) > 1:
            raise wire.SqlError(
                "cannot insert multiple commands into a prepared statement", "42601"
            )
        self.statements[name] = Prepared(statements[0] if statements else "", oids)
        self.send(wire.message(b"1"))

    def bind(self, body: bytes) -> None:
        reader = wire.Reader(body)
        portal_name, statement_name = reader.cstring(), reader.cstring()
        statement = self.statements.get(statement_name)
        if statement is None:
            raise wire.SqlError(f'prepared statement "{statement_name}" does not exist', "26000")
        formats = [reader.int16() for _ in range(reader.int16())]
        values = []
        for i in range(reader.int16()):
            length = reader.int32()
            if length < 0:
                values.append(None)
                continue
            data = reader.raw(length)
            fmt = formats[i] if len(formats) > 1 else (formats[0] if formats else 0)
            oid = statement.param_oids[i] if i < len(statement.param_oids) else 0
            values.append(wire.decode_parameter(data, oid, fmt))
        result_formats = [reader.int16() for _ in range(reader.int16())]
        old = self.portals.pop(portal_name, None)
        if old is not None and old.result is not None and old.result.close is not None:
            old.result.close()
        self.portals[portal_name] = Portal(statement, values, result_formats)
        self.send(wire.message(b"2"))

    def _formats(self, portal: Portal, columns: list[wire.Column]) -> list[int]:
        """Each column's format: what Bind asked for (none: text; one: for all), but text for
        a type without a binary encoder, and the row description says so."""
        requested = portal.result_formats or [0]
        if len(requested) == 1:
            requested = requested * len(columns)
        if len(requested) != len(columns):
            raise wire.SqlError(
                f"bind message has {len(requested)} result formats but query has "
                f"{len(columns)} columns",
                "08P01",
            )
        return [wire.result_format(c.type_oid, f) for c, f in zip(columns, requested, strict=True)]

    def describe(self, body: bytes) -> None:
        reader = wire.Reader(body)
        what, name = reader.raw(1), reader.cstring()
        if what == b"S":
            statement = self.statements.get(name)
            if statement is None:
                raise wire.SqlError(f'prepared statement "{name}" does not exist', "26000")
            count = max(len(statement.param_oids), parameter_count(statement.sql))
            oids = [
                (statement.param_oids[i] if i < len(statement.param_oids) else 0) or wire.TEXT
                for i in range(count)
            ]
            self.send(wire.parameter_description(oids))
            columns = self.describe_statement(statement, count)
            if columns is None:
                self.send(wire.message(b"n"))
            else:
                self.send(wire.row_description(columns, [0] * len(columns)))
            return
        portal = self.portals.get(name)
        if portal is None:
            raise wire.SqlError(f'portal "{name}" does not exist', "34000")
        if self.row_kind(portal.statement.sql):
            portal.result = self.run_statement(portal.statement, portal.params)
        if portal.result is None or portal.result.columns is None:
            self.send(wire.message(b"n"))
            return
        portal.formats = self._formats(portal, portal.result.columns)
        self.send(wire.row_description(portal.result.columns, portal.formats))

    def describe_statement(self, statement: Prepared, count: int) -> list[wire.Column] | None:
        sql = strip_comments(statement.sql)
        word = _first_word(sql)
        if word == "show":
            return [wire.Column(_shown_setting(sql).lower() or "setting", wire.TEXT)]
        if word == "fetch":
            name = sql.split()[-1].strip('"').rstrip(";")
            return self.cursors[name][0].columns if name in self.cursors else None
        if word not in ("select", "with", "values", "table", "("):
            return None
        if self.transaction == b"E":
            raise self.aborted()
        result = self.query(
            f"select * from ({sql.rstrip(';')}) as described limit 0", [None] * count
        )
        if result.close is not None:
            result.close()
        return result.columns

    def row_kind(self, sql: str) -> bool:
        return _first_word(strip_comments(sql)) in QUERY_WORDS + ("show", "execute", "fetch")

    def execute(self, body: bytes) -> None:
        reader = wire.Reader(body)
        name, max_rows = reader.cstring(), reader.int32()
        portal = self.portals.get(name)
        if portal is None:
            raise wire.SqlError(f'portal "{name}" does not exist', "34000")
        if portal.result is None:
            portal.result = self.run_statement(portal.statement, portal.params)
        result = portal.result
        if result.columns is None:
            self.send(wire.command_complete(result.tag))
            return
        if not portal.formats:
            portal.formats = self._formats(portal, result.columns)
        self.send_rows(result, portal.formats, max_rows)

    def close(self, body: bytes) -> None:
        reader = wire.Reader(body)
        what, name = reader.raw(1), reader.cstring()
        if what == b"S":
            self.statements.pop(name, None)
        else:
            portal = self.portals.pop(name, None)
            if portal is not None and portal.result is not None and portal.result.close:
                portal.result.close()
        self.send(wire.message(b"3"))

    def sync(self) -> None:
        self.skip_until_sync = False
        self.end_of_batch()
        self.send(wire.ready_for_query(self.transaction))
        self.flush()

    # -- statements ----------------------------------------------------------------------------

    def aborted(self) -> wire.SqlError:
        return wire.SqlError(
            "current transaction is aborted, commands ignored until end of transaction block",
            "25P02",
        )

    def copy(self) -> EndpointCopy:
        """The publication this statement reads: kept until the transaction (or batch) ends."""
        if self.pinned is None:
            self.pinned = self.endpoint.reader.pinned()
        return self.pinned

    def run_statement(self, statement: Prepared, params: list[Any]) -> Result:
        sql = strip_comments(statement.sql)
        word = _first_word(sql)
        if self.transaction == b"E" and word not in ("rollback", "abort", "commit", "end"):
            raise self.aborted()
        if word in ("begin", "start"):
            self.transaction = b"T"
            return Result("BEGIN")
        if word in ("commit", "end", "rollback", "abort"):
            if re.match(r"\s*rollback\s+(?:work\s+|transaction\s+)?to\b", sql, re.I):
                self.transaction = b"T" if self.transaction != b"I" else b"I"
                return Result("ROLLBACK")
            failed = self.transaction == b"E"
            self.transaction = b"I"
            for name, (_, hold) in list(self.cursors.items()):
                if not hold or failed or word in ("rollback", "abort"):
                    self.close_cursors(name)
            self.close_portals_except_running()
            self.unpin()
            return Result("ROLLBACK" if failed or word in ("rollback", "abort") else "COMMIT")
        if word == "declare":
            return self.declare(sql, params)
        if word == "fetch":
            return self.fetch(sql)
        if word == "close":
            target = sql.split()[-1].strip('"').rstrip(";")
            self.close_cursors(None if target.lower() == "all" else target)
            return Result("CLOSE CURSOR")
        if word in ("savepoint", "release"):
            return Result(word.upper())
        if word == "set":
            return self.set_command(sql)
        if word == "reset":
            return self.reset(sql)
        if word == "discard":
            self.sql_prepared.clear()
            return Result("DISCARD ALL")
        if word == "show":
            return self.show(sql)
        if word == "deallocate":
            target = sql.split()[-1].strip('"')
            if target.lower() == "all":
                self.sql_prepared.clear()
                return Result("DEALLOCATE ALL")
            self.sql_prepared.pop(target, None)
            return Result("DEALLOCATE")
        if word == "prepare":
            match = re.match(r"\s*prepare\s+(\"[^\"]+\"|\w+)\s*(?:\([^)]*\))?\s+as\s+(.*)$", sql,
                             re.I | re.S)  # fmt: skip
            if not match:
                raise wire.SqlError("syntax error in PREPARE", "42601")
            self.check_query(match.group(2))
            self.sql_prepared[match.group(1).strip('"')] = match.group(2)
            return Result("PREPARE")
        if word == "execute":
            match = re.match(r"\s*execute\s+(\"[^\"]+\"|\w+)\s*(\(.*\))?\s*$", sql, re.I | re.S)
            body = self.sql_prepared.get(match.group(1).strip('"')) if match else None
            if body is None:
                raise wire.SqlError("prepared statement does not exist", "26000")
            return self.query(body, params, execute_args=match.group(2) or "")
        if word in QUERY_WORDS:
            return self.query(sql, params)
        if not word:
            return Result("")
        raise wire.SqlError(
            f"cannot execute {word.upper()} in a read-only transaction: the SQL endpoint of "
            "customer360 serves the marts read-only",
            "25006",
        )

    def declare(self, sql: str, params: list[Any]) -> Result:
        match = re.match(
            r"\s*declare\s+(\"[^\"]+\"|\w+)\s+(?:binary\s+)?(?:(?:a|in)?sensitive\s+)?"
            r"(?:(?:no\s+)?scroll\s+)?cursor\s+(with\s+hold\s+|without\s+hold\s+)?for\s+(.*)$",
            sql,
            re.I | re.S,
        )
        if not match:
            raise wire.SqlError("syntax error in DECLARE CURSOR", "42601")
        name = match.group(1).strip('"')
        self.close_cursors(name)
        result = self.query(match.group(3), params)
        hold = bool(match.group(2)) and match.group(2).lower().startswith("with ")
        self.cursors[name] = (result, hold)
        return Result("DECLARE CURSOR")

    def fetch(self, sql: str) -> Result:
        match = re.match(
            r"\s*fetch\s+(?:(next|all|forward\s+all|forward\s+\d+|forward|\d+)\s+)?"
            r"(?:from\s+|in\s+)?(\"[^\"]+\"|\w+)\s*;?\s*$",
            sql,
            re.I | re.S,
        )
        if not match:
            raise wire.SqlError("syntax error in FETCH", "42601")
        name = match.group(2).strip('"')
        if name not in self.cursors:
            raise wire.SqlError(f'cursor "{name}" does not exist', "34000")
        cursor, _ = self.cursors[name]
        how = (match.group(1) or "next").lower().split()[-1]
        count = 1 if how in ("next", "forward") else (0 if how == "all" else int(how))
        rows = iter(cursor.rows) if count == 0 else itertools.islice(cursor.rows, count)
        return Result("FETCH", cursor.columns, rows, cursor=cursor.cursor)

    def close_cursors(self, name: str | None) -> None:
        for key in [name] if name is not None else list(self.cursors):
            entry = self.cursors.pop(key, None)
            if entry is not None and entry[0].close is not None:
                entry[0].close()

    def close_portals_except_running(self) -> None:
        for portal in self.portals.values():
            if portal.result is not None and portal.result.close is not None:
                portal.result.close()
                portal.result.close = None

    def set_command(self, sql: str) -> Result:
        match = re.match(
            r"\s*set\s+(?:session\s+|local\s+)?(?:(time\s+zone)\s+(.+)|([\w.]+)\s*(?:=|\bto\b)\s*(.+))$",
            sql,
            re.I | re.S,
        )
        if match:
            name = "TimeZone" if match.group(1) else match.group(3)
            value = (match.group(2) or match.group(4)).strip().strip("'\"")
            if value.lower() == "default":
                self.settings.pop(name.lower(), None)
                return Result("SET")
            if name.lower() == "statement_timeout":
                _timeout_ms(value)  # refused now, as PostgreSQL does, not at the next query
            self.settings[name.lower()] = value
            if name.lower() == "application_name":
                self.send(wire.parameter_status("application_name", value))
        return Result("SET")

    def reset(self, sql: str) -> Result:
        """RESET name / RESET ALL: back to the server's value (statement_timeout: none)."""
        words = sql.rstrip(";").split()
        name = words[1].strip('"').lower() if len(words) > 1 else ""
        if name == "all":
            # the login's application_name stays, as PostgreSQL keeps a startup value
            self.settings = {k: v for k, v in self.settings.items() if k == "application_name"}
        else:
            self.settings.pop(name, None)
        return Result("RESET")

    def show(self, sql: str) -> Result:
        name = _shown_setting(sql)
        if name.lower() == "all":
            values = {k: v for k, v in SERVER_SETTINGS.items()} | self.settings
            rows = [(k, v, "") for k, v in sorted(values.items())]
            columns = [wire.Column(n, wire.TEXT) for n in ("name", "setting", "description")]
            return Result("SHOW", columns, iter(rows))
        value = self.settings.get(name.lower())
        if value is None:
            value = next((v for k, v in SERVER_SETTINGS.items() if k.lower() == name.lower()), None)
        if value is None:
            raise wire.SqlError(f'unrecognized configuration parameter "{name}"', "42704")
        return Result("SHOW", [wire.Column(name.lower(), wire.TEXT)], iter([(value,)]))

    def check_query(self, sql: str) -> None:
        word = _first_word(strip_comments(sql))
        if word not in QUERY_WORDS:
            raise wire.SqlError(
                f"cannot execute {word.upper()} in a read-only transaction", "25006"
            )

    def query(self, sql: str, params: list[Any], execute_args: str | None = None) -> Result:
        copy = self.copy()
        rewritten = rewrite(sql, copy.class_oids, copy.schema)
        cur = copy.acquire()
        released = False

        def release(reuse: bool = True) -> None:
            nonlocal released
            if not released:
                released = True
                self.running = None
                copy.release(cur, reuse)

        try:
            try:
                statements = cur.extract_statements(rewritten)
                kind = _not_a_read(cur, statements)
            except duckdb.Error as exc:
                raise wire.SqlError(str(exc), _sqlstate(exc)) from exc
            if kind is not None:
                raise wire.SqlError(
                    f"cannot execute {kind} in a read-only transaction: the SQL endpoint of "
                    "customer360 serves the marts read-only",
                    "25006",
                )
            self.running = cur
            try:
                if execute_args is not None:
                    cur.execute(f"prepare c360_sql_prepared as {rewritten}")
                    cur.execute(f"execute c360_sql_prepared{execute_args}")
                    cur_description = cur.description
                else:
                    cur.execute(rewritten, params or None)
                    cur_description = cur.description
            except duckdb.Error as exc:
                raise wire.SqlError(str(exc), _sqlstate(exc)) from exc
            columns = [
                wire.Column(_column_name(name), *wire.pg_type(str(type_code)))
                for name, type_code, *_ in cur_description or []
            ]
        except BaseException:
            release(reuse=False)
            raise

        def rows() -> Iterator[tuple]:
            try:
                while True:
                    batch = cur.fetchmany(FETCH_ROWS)
                    if not batch:
                        break
                    yield from batch
            finally:
                if execute_args is not None:
                    try:
                        cur.execute("deallocate c360_sql_prepared")
                    except duckdb.Error:
                        pass
                release()

        tag = "EXPLAIN" if statements[0].type == duckdb.StatementType.EXPLAIN else "SELECT"
        return Result(tag, columns, rows(), release, cursor=cur)

    def cancel(self) -> None:
        running = self.running
        if running is not None:
            try:
                running.interrupt()
            except duckdb.Error:
                pass


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        endpoint: SqlEndpoint = self.server.endpoint  # type: ignore[attr-defined]
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = f"{self.client_address[0]}:{self.client_address[1]}"
        session = Session(self.request, endpoint, client)
        endpoint.sessions[session.pid] = session
        try:
            session.run()
        except (ConnectionError, ssl.SSLError, OSError):
            pass  # the client went away
        except wire.ProtocolError as exc:
            log.warning("sql session %d: protocol error from %s: %s", session.pid, client, exc)
        except wire.SqlError as exc:
            session.fatal(exc)
        finally:
            endpoint.sessions.pop(session.pid, None)
            session.close_portals()
            session.close_cursors(None)
            session.unpin()
            log.debug("sql session %d: closed", session.pid)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class SqlEndpoint:
    """`with SqlEndpoint(settings, port=0) as endpoint: endpoint.port` serves in a thread."""

    def __init__(self, settings: Settings, host: str | None = None, port: int | None = None):
        self.settings = settings
        self.host = host or settings.sql_host
        check_sql_bind(settings, self.host)
        self.verifier = wire.ScramVerifier(settings.sql_password) if settings.sql_password else None
        self.tls: ssl.SSLContext | None = None
        if settings.sql_tls_cert and settings.sql_tls_key:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                self.tls.load_cert_chain(settings.sql_tls_cert, settings.sql_tls_key)
            except OSError as exc:  # ssl.SSLError too: an OSError the port's handler must not see
                raise SqlTlsUnusable(
                    f"cannot load the TLS certificate {settings.sql_tls_cert} and key "
                    f"{settings.sql_tls_key} (C360_SQL_TLS_CERT, C360_SQL_TLS_KEY): {exc}"
                ) from exc
        self.reader = EndpointReader(settings.serving_path)
        self.sessions: dict[int, Session] = {}
        self.pids = itertools.count(1000 + secrets.randbelow(100000))
        self.server = _Server((self.host, settings.sql_port if port is None else port), _Handler)
        self.server.endpoint = self  # type: ignore[attr-defined]
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def describe(self) -> str:
        return (
            f"SQL endpoint (PostgreSQL protocol) on {self.host}:{self.port}, database "
            f"customer360, user {self.settings.sql_user}, "
            + ("password required (SCRAM-SHA-256)" if self.verifier else "no password (loopback)")
            + (", TLS offered" if self.tls else "")
            + f", serving {self.settings.serving_path}"
        )

    def cancel(self, pid: int, secret: int) -> None:
        session = self.sessions.get(pid)
        if session is not None and secrets.compare_digest(
            session.secret.to_bytes(4, "big"), secret.to_bytes(4, "big")
        ):
            session.cancel()

    def serve_forever(self) -> None:
        log.info("%s", self.describe())
        self.server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.reader.close()

    def __enter__(self) -> SqlEndpoint:
        self.thread = threading.Thread(target=self.serve_forever, name="c360-sql", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        if self.thread is not None:
            self.thread.join(10)
