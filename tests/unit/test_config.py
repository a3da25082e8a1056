"""Settings: every path absolute whatever the user sets, and a child process gets them back."""

from __future__ import annotations

import os
from pathlib import Path

from customer360.config import Settings, load_settings


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
