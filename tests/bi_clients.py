"""Real BI clients for the SQL endpoint's tests: PostgreSQL's JDBC driver from Java, psqlODBC
through unixODBC from pyodbc, and psycopg.

PostgreSQL's JDBC driver comes from Maven Central (tests/jdbc/postgresql-pom.xml, fetched once
into `.c360/postgresql-jdbc/`); the ODBC driver is Debian's `odbc-postgresql`, registered with
unixODBC as "PostgreSQL Unicode" (`make test` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JDBC_DIR = REPO / "tests" / "jdbc"
PG_JARS_CACHE = REPO / ".c360" / "postgresql-jdbc"
ODBC_DRIVER = "PostgreSQL Unicode"


def postgresql_jdbc_jar() -> Path:
    """PostgreSQL's JDBC driver, fetched with Maven once and cached."""
    if not (PG_JARS_CACHE / ".complete").exists():
        mvn = shutil.which("mvn")
        assert mvn, "Maven (mvn) is needed once to fetch PostgreSQL's JDBC driver"
        partial = PG_JARS_CACHE.with_name(PG_JARS_CACHE.name + f".partial{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(JDBC_DIR / "postgresql-pom.xml"),
             "dependency:copy-dependencies", f"-DoutputDirectory={partial}",
             "-DincludeScope=runtime"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
        (partial / ".complete").write_text("ok\n")
        shutil.rmtree(PG_JARS_CACHE, ignore_errors=True)
        partial.rename(PG_JARS_CACHE)
    return next(PG_JARS_CACHE.glob("postgresql-*.jar"))


def compile_java_clients(out: Path) -> str:
    """Compiles tests/jdbc/*.java against PostgreSQL's driver; returns the class path."""
    for tool in ("javac", "java"):
        assert shutil.which(tool), f"{tool} (a JDK, apt-get install default-jdk) is needed"
    jar = postgresql_jdbc_jar()
    classes = out / "classes"
    subprocess.run(
        ["javac", "-d", str(classes), "-cp", str(jar),
         str(JDBC_DIR / "ServingLoop.java"), str(JDBC_DIR / "BiCatalog.java")],
        check=True,
    )  # fmt: skip
    return f"{classes}:{jar}"


def jdbc_url(port: int) -> str:
    return f"jdbc:postgresql://127.0.0.1:{port}/customer360"


def odbc_connection_string(port: int, user: str, password: str | None) -> str:
    return (
        f"DRIVER={{{ODBC_DRIVER}}};SERVER=127.0.0.1;PORT={port};DATABASE=customer360;"
        f"UID={user};PWD={password or ''};"
    )


def psycopg_conninfo(port: int, user: str, password: str | None, **extra: str) -> str:
    parts = [f"host=127.0.0.1 port={port} dbname=customer360 user={user}"]
    if password:
        parts.append(f"password={password}")
    parts += [f"{k}={v}" for k, v in extra.items()]
    return " ".join(parts)
