"""`c360 sql`: the PostgreSQL-protocol SQL endpoint over the serving database."""

from __future__ import annotations

import argparse
import sys

from customer360.config import Settings, port_number
from customer360.serving.priority import add_nice_argument, lower_priority


def _sql_command(args: argparse.Namespace, settings: Settings) -> int:
    from customer360.serving.sql_endpoint.server import SqlEndpoint, SqlTlsUnusable, UnsafeSqlBind

    try:
        endpoint = SqlEndpoint(settings, args.host, args.port)
    except (UnsafeSqlBind, SqlTlsUnusable) as exc:
        print(f"c360 sql: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        host = args.host or settings.sql_host
        port = settings.sql_port if args.port is None else args.port
        print(f"c360 sql: cannot listen on {host}:{port} ({exc}); is another endpoint "
              "running? set C360_SQL_PORT or --port", file=sys.stderr)  # fmt: skip
        return 1
    lower_priority(args.nice)
    try:
        endpoint.serve_forever()
    finally:
        endpoint.shutdown()
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sql",
        help="SQL endpoint (PostgreSQL protocol) for BI tools over the serving database",
        description="Serve the marts of the serving database (C360_SERVING_DB) read-only over "
        "PostgreSQL's wire protocol, for ODBC, JDBC and BI tools: database customer360, schema "
        "public, user C360_SQL_USER (default bi). Binds 127.0.0.1:5433 unless told otherwise; "
        "another address needs C360_SQL_PASSWORD; TLS with C360_SQL_TLS_CERT and "
        "C360_SQL_TLS_KEY.",
    )
    parser.add_argument("--host", help="address to bind (default C360_SQL_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=port_number, help="port (default C360_SQL_PORT or 5433)")
    add_nice_argument(parser)
    parser.set_defaults(func=_sql_command)
