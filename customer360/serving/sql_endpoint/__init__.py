"""The SQL endpoint for BI tools: the marts over PostgreSQL's wire protocol, read-only.

`c360 sql` (and `c360 up`) serve the published serving copy to any PostgreSQL client: ODBC
(psqlODBC), JDBC (org.postgresql), psql, Tableau, Power BI, Excel, Metabase, DBeaver. See
`server.py` for sessions and consistency, `catalog.py` for what clients see, `wire.py` for the
protocol.
"""

from customer360.serving.sql_endpoint.server import SqlEndpoint, UnsafeSqlBind, check_sql_bind

__all__ = ["SqlEndpoint", "UnsafeSqlBind", "check_sql_bind"]
