"""The one place that reads customer360's environment variables.

Every command and module takes a `Settings` from `load_settings()` instead of reading
`os.environ` itself, so a variable documented in the README is honoured everywhere. A child
process gets its settings back through `Settings.environment()`, the one writer of C360_*.

Paths are made absolute when a `Settings` is created (against the working directory of that
moment): Maven, Java, Dagster, dbt and every subprocess resolve a relative path against their
own working directory, which is not ours, so none of them is ever handed one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from customer360.addresses import kafka_host_port, mongo_host_port, redact_uri

KAFKA_TOPICS = ("weblogs", "marketing_emails")
KAFKA_PARTITIONS = 3
MONGO_COLLECTIONS = ("users", "online_orders", "instore_orders")


class ConfigError(ValueError):
    """A C360_* variable holds a value no command can use; the message names it and says why."""


@dataclass(frozen=True)
class Settings:
    mongo_uri: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "fashion"
    kafka_bootstrap: str = "127.0.0.1:9092"
    warehouse: Path = Path("data/warehouse.duckdb")
    home: Path = Path(".c360")
    # Where the Kafka jars are cached; tests point many throwaway homes at one cache.
    kafka_jars: Path | None = None
    # Prepended to the Kafka topic names; lets tests share one broker without sharing data.
    kafka_topic_prefix: str = ""
    # The read-only copy of the marts that BI tools, the API and the dashboard read; published
    # atomically after each micro-batch. Default: serving.duckdb next to the warehouse.
    serving_db: Path | None = None
    # Bearer token of the profile API; required when set, and to bind a non-loopback host.
    api_token: str | None = None
    serve_host: str = "127.0.0.1"
    serve_port: int = 8360
    # How often Dagster's micro-batch sensor checks that the stream run is alive.
    sensor_interval_s: int = 5
    # The PostgreSQL-protocol SQL endpoint for BI tools (`c360 sql`): where it listens, the one
    # read-only login, its password (required to bind a non-loopback host; never in a repr or
    # a log) and, when both are given, the TLS certificate and key it offers.
    sql_host: str = "127.0.0.1"
    sql_port: int = 5433
    sql_user: str = "bi"
    sql_password: str | None = field(default=None, repr=False)
    sql_tls_cert: Path | None = None
    sql_tls_key: Path | None = None

    def __post_init__(self) -> None:
        for name in (
            "warehouse",
            "home",
            "kafka_jars",
            "serving_db",
            "sql_tls_cert",
            "sql_tls_key",
        ):
            path = getattr(self, name)
            if path is not None:
                # abspath, not resolve(): no file system access, and a symlinked home stays as
                # the user named it.
                object.__setattr__(self, name, Path(os.path.abspath(path)))

    @property
    def serving_path(self) -> Path:
        return self.serving_db or self.warehouse.with_name("serving.duckdb")

    def topic(self, name: str) -> str:
        """The Kafka topic that carries the source `name` (`weblogs`, `marketing_emails`)."""
        return f"{self.kafka_topic_prefix}{name}"

    @property
    def kafka_jars_dir(self) -> Path:
        return self.kafka_jars or self.home / "kafka" / "jars"

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) with every C360_* variable set so that a
        child process's `load_settings()` gives back exactly these settings."""
        env = dict(os.environ if base is None else base)
        for name in _OPTIONAL_VARIABLES:
            env.pop(name, None)
        env.update(
            C360_MONGO_URI=self.mongo_uri,
            C360_MONGO_DB=self.mongo_db,
            C360_KAFKA_BOOTSTRAP=self.kafka_bootstrap,
            C360_KAFKA_TOPIC_PREFIX=self.kafka_topic_prefix,
            C360_WAREHOUSE=str(self.warehouse),
            C360_HOME=str(self.home),
            C360_SERVE_HOST=self.serve_host,
            C360_SERVE_PORT=str(self.serve_port),
            C360_SENSOR_INTERVAL_S=str(self.sensor_interval_s),
            C360_SQL_HOST=self.sql_host,
            C360_SQL_PORT=str(self.sql_port),
            C360_SQL_USER=self.sql_user,
        )
        if self.kafka_jars is not None:
            env["C360_KAFKA_JARS"] = str(self.kafka_jars)
        if self.serving_db is not None:
            env["C360_SERVING_DB"] = str(self.serving_db)
        if self.api_token:
            env["C360_API_TOKEN"] = self.api_token
        if self.sql_password:
            env["C360_SQL_PASSWORD"] = self.sql_password
        if self.sql_tls_cert is not None:
            env["C360_SQL_TLS_CERT"] = str(self.sql_tls_cert)
        if self.sql_tls_key is not None:
            env["C360_SQL_TLS_KEY"] = str(self.sql_tls_key)
        return env


# Variables `environment()` sets only when the setting has a value: a parent's value must not
# leak into a child whose settings have none.
_OPTIONAL_VARIABLES = (
    "C360_KAFKA_JARS",
    "C360_SERVING_DB",
    "C360_API_TOKEN",
    "C360_SQL_PASSWORD",
    "C360_SQL_TLS_CERT",
    "C360_SQL_TLS_KEY",
)


# The TCP ports every C360_*_PORT variable, every --port option and the port of an address take.
PORTS = (1, 65535)


def _whole_number(text: str, low: int, high: int) -> int:
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{value} is not from {low} to {high}")
    return value


def port_number(text: str) -> int:
    """A TCP port, as every C360_*_PORT variable and every --port option takes it."""
    return _whole_number(text, *PORTS)


def _setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = env.get(name)
    if text is None:
        return default
    try:
        return _whole_number(text, low, high)
    except ValueError:
        raise ConfigError(
            f"{name} must be a whole number from {low} to {high}, not {text!r}"
        ) from None


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    return _setting(env, name, default, *PORTS)


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    text = env.get(name, default)
    if not text.strip():
        # Set from an unset variable (`C360_HOME=$DIR`), not chosen: an empty path is the
        # working directory (the warehouse a directory, the home the checkout itself).
        raise ConfigError(f"{name} is set but empty: unset it for its default ({default})")
    return text


def _bearer_token(env: Mapping[str, str], name: str) -> str | None:
    """A token clients send in an `Authorization: Bearer` header (None when unset or empty).
    HTTP drops whitespace around a header's value, so a token with some there could never
    match: every request would be refused."""
    text = env.get(name) or None
    if text is not None and text != text.strip():
        raise ConfigError(
            f"{name} begins or ends with whitespace, which no HTTP client can send: remove it"
        )
    return text


def _sql_password(env: Mapping[str, str]) -> str | None:
    """C360_SQL_PASSWORD: unset is no password (loopback only); set but empty is refused, as
    `C360_SQL_PASSWORD=$UNSET_VAR` would otherwise start an endpoint without one, silently."""
    text = env.get("C360_SQL_PASSWORD")
    if text is not None and not text.strip():
        raise ConfigError(
            "C360_SQL_PASSWORD is set but empty: set a password, or unset it to serve without"
            " one (then only on a loopback address)"
        )
    return text


def _address(env: Mapping[str, str], name: str, default: str, host_port, shown=str) -> str:
    """A Kafka bootstrap or Mongo URI whose first host has a usable port (`localhost:abc`
    raised a ValueError wherever the services were started or checked)."""
    text = _text(env, name, default)
    try:
        usable = PORTS[0] <= host_port(text)[1] <= PORTS[1]
    except ValueError:  # a port that is no whole number
        usable = False
    if not usable:
        raise ConfigError(
            f"{name} names no usable port (a whole number from {PORTS[0]} to {PORTS[1]}): "
            f"{shown(text)!r}"
        )
    return text


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings the environment gives; `ConfigError` names the first variable that is wrong,
    so a command stops at once instead of failing later where the value is used."""
    env = os.environ if env is None else env
    defaults = Settings()
    jars = env.get("C360_KAFKA_JARS")
    serving_db = env.get("C360_SERVING_DB")
    sql_tls_cert = env.get("C360_SQL_TLS_CERT")
    sql_tls_key = env.get("C360_SQL_TLS_KEY")
    if bool(sql_tls_cert) != bool(sql_tls_key):
        # One without the other would serve without TLS, silently.
        raise ConfigError(
            "C360_SQL_TLS_CERT and C360_SQL_TLS_KEY go together: set both (TLS) or neither"
        )
    return Settings(
        mongo_uri=_address(
            env, "C360_MONGO_URI", defaults.mongo_uri, mongo_host_port, shown=redact_uri
        ),
        mongo_db=_text(env, "C360_MONGO_DB", defaults.mongo_db),
        kafka_bootstrap=_address(
            env, "C360_KAFKA_BOOTSTRAP", defaults.kafka_bootstrap, kafka_host_port
        ),
        # The class's defaults, as written (relative): an instance's are made absolute.
        warehouse=Path(_text(env, "C360_WAREHOUSE", str(Settings.warehouse))),
        home=Path(_text(env, "C360_HOME", str(Settings.home))),
        kafka_jars=Path(jars) if jars else None,
        kafka_topic_prefix=env.get("C360_KAFKA_TOPIC_PREFIX", defaults.kafka_topic_prefix),
        serving_db=Path(serving_db) if serving_db else None,
        api_token=_bearer_token(env, "C360_API_TOKEN"),
        serve_host=_text(env, "C360_SERVE_HOST", defaults.serve_host),
        serve_port=_port(env, "C360_SERVE_PORT", defaults.serve_port),
        sensor_interval_s=_setting(
            env, "C360_SENSOR_INTERVAL_S", defaults.sensor_interval_s, 1, 86_400
        ),
        sql_host=_text(env, "C360_SQL_HOST", defaults.sql_host),
        sql_port=_port(env, "C360_SQL_PORT", defaults.sql_port),
        sql_user=_text(env, "C360_SQL_USER", defaults.sql_user),
        sql_password=_sql_password(env),
        sql_tls_cert=Path(sql_tls_cert) if sql_tls_cert else None,
        sql_tls_key=Path(sql_tls_key) if sql_tls_key else None,
    )
