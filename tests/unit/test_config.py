"""Settings: every path absolute whatever the user sets, a child process gets them back, and a
value no command can use stops every command at once, naming its variable."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from customer360.cli import main
from customer360.config import ConfigError, Settings, load_settings


def test_relative_paths_become_absolute_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        {
            "C360_HOME": ".c360",
            "C360_WAREHOUSE": "data/../data/warehouse.duckdb",
            "C360_KAFKA_JARS": "jars",
            "C360_SERVING_DB": "serving/copy.duckdb",
        }
    )
    assert settings.home == tmp_path / ".c360"
    assert settings.warehouse == tmp_path / "data" / "warehouse.duckdb"
    assert settings.kafka_jars_dir == tmp_path / "jars"
    assert settings.serving_path == tmp_path / "serving" / "copy.duckdb"


def test_the_defaults_are_absolute_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    for path in (settings.home, settings.warehouse, settings.kafka_jars_dir, settings.serving_path):
        assert path.is_absolute(), path
    assert settings.kafka_jars_dir == tmp_path / ".c360" / "kafka" / "jars"
    assert settings.serving_path == tmp_path / "data" / "serving.duckdb"
    # So is a Settings built in code, as tests and the bench do.
    assert Settings(home=Path("h")).home == tmp_path / "h"


def test_a_child_process_environment_gives_back_the_same_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        {"C360_HOME": "h", "C360_API_TOKEN": "secret", "C360_KAFKA_TOPIC_PREFIX": "p_"}
    )
    # The child may start in another directory: nothing in its environment is relative.
    monkeypatch.chdir("/")
    env = settings.environment({"PATH": os.defpath, "C360_SERVING_DB": "stale.duckdb"})
    assert load_settings(env) == settings
    assert env["PATH"] == os.defpath
    assert all(Path(env[v]).is_absolute() for v in ("C360_HOME", "C360_WAREHOUSE"))
    # A parent's value of an optional variable does not leak into a child whose settings lack it.
    assert "C360_SERVING_DB" not in env


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("C360_SERVE_PORT", "abc"),
        ("C360_SERVE_PORT", ""),
        ("C360_SQL_PORT", "70000"),
        ("C360_SQL_PORT", "0"),
        ("C360_SENSOR_INTERVAL_S", "5s"),
        ("C360_SENSOR_INTERVAL_S", "-1"),
    ],
)
def test_a_number_no_command_can_use_is_refused_naming_its_variable(name, value):
    with pytest.raises(ConfigError, match=rf"^{name} must be .*, not {re.escape(repr(value))}$"):
        load_settings({name: value})


def test_the_bounds_themselves_are_accepted():
    settings = load_settings(
        {"C360_SERVE_PORT": "1", "C360_SQL_PORT": "65535", "C360_SENSOR_INTERVAL_S": "1"}
    )
    assert (settings.serve_port, settings.sql_port, settings.sensor_interval_s) == (1, 65535, 1)


def test_c360_says_which_variable_is_wrong_in_one_line_instead_of_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("C360_SERVE_PORT", "80a0")
    assert main(["services", "status"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "c360: C360_SERVE_PORT must be a whole number from 1 to 65535, not '80a0'\n"


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("C360_HOME", ".c360"),
        ("C360_WAREHOUSE", "data/warehouse.duckdb"),
        ("C360_MONGO_URI", "mongodb://127.0.0.1:27017"),
        ("C360_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        ("C360_SQL_HOST", "127.0.0.1"),
    ],
)
def test_a_variable_set_but_empty_is_refused_rather_than_taken_for_the_working_directory(
    name, default, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        load_settings({name: " "})
    assert str(refused.value) == f"{name} is set but empty: unset it for its default ({default})"
    # The prefix may be empty (no prefix), and the environment handed to a child says so.
    assert load_settings({"C360_KAFKA_TOPIC_PREFIX": ""}).kafka_topic_prefix == ""


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("C360_KAFKA_BOOTSTRAP", "localhost:abc", "localhost:abc"),
        ("C360_KAFKA_BOOTSTRAP", "broker:0,other:9093", "broker:0,other:9093"),
        ("C360_MONGO_URI", "mongodb://db:99999", "mongodb://db:99999"),
        # the password is not repeated in the error
        ("C360_MONGO_URI", "mongodb://u:secret@db:27O17/", "mongodb://u:***@db:27O17/"),
    ],
)
def test_an_address_without_a_usable_port_is_refused_naming_its_variable(name, value, shown):
    # `localhost:abc` was a ValueError traceback from wherever the services were started.
    with pytest.raises(ConfigError) as refused:
        load_settings({name: value})
    assert str(refused.value) == (
        f"{name} names no usable port (a whole number from 1 to 65535): {shown!r}"
    )


def test_addresses_without_a_port_or_with_several_hosts_are_accepted():
    settings = load_settings(
        {
            "C360_KAFKA_BOOTSTRAP": "localhost",
            "C360_MONGO_URI": "mongodb://u:p@db1:27117,db2:27118/?replicaSet=rs0",
        }
    )
    assert settings.kafka_bootstrap == "localhost"
    assert load_settings({"C360_MONGO_URI": "mongodb+srv://cluster.example.com/db"}).mongo_uri


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_sql_password_set_but_empty_is_refused_not_taken_for_none(empty):
    # `C360_SQL_PASSWORD=$UNSET_VAR` started the endpoint without a password, silently.
    with pytest.raises(ConfigError, match=r"^C360_SQL_PASSWORD is set but empty: "):
        load_settings({"C360_SQL_PASSWORD": empty})
    assert load_settings({}).sql_password is None
    assert load_settings({"C360_SQL_PASSWORD": " pass word "}).sql_password == " pass word "


@pytest.mark.parametrize("token", [" spaced ", "trailing\t", "\nleading"])
def test_an_api_token_no_http_client_can_send_is_refused(token):
    with pytest.raises(ConfigError, match=r"^C360_API_TOKEN begins or ends with whitespace"):
        load_settings({"C360_API_TOKEN": token})


def test_an_api_token_with_inner_spaces_and_any_script_is_kept():
    assert load_settings({"C360_API_TOKEN": "two words ü"}).api_token == "two words ü"
    assert load_settings({"C360_API_TOKEN": ""}).api_token is None
