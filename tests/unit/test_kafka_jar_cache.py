"""Kafka's jar cache is trusted only when it holds the jars it lists, the broker's among them."""

from __future__ import annotations

from customer360.services.kafka import JAR_MANIFEST, jar_cache_is_complete


def test_a_cache_is_complete_only_with_every_listed_jar(tmp_path):
    jars = tmp_path / "jars"
    assert not jar_cache_is_complete(jars)  # missing
    jars.mkdir()
    names = ["kafka_2.13-4.1.1.jar", "kafka-clients-4.1.1.jar"]
    for name in names:
        (jars / name).write_bytes(b"PK")
    assert not jar_cache_is_complete(jars)  # jars, but no manifest: Maven did not finish
    (jars / JAR_MANIFEST).write_text("\n".join(names) + "\n")
    assert jar_cache_is_complete(jars)
    (jars / names[1]).unlink()
    assert not jar_cache_is_complete(jars)  # a listed jar went missing


def test_an_empty_cache_marked_complete_by_an_older_version_is_not_trusted(tmp_path):
    # What a relative C360_HOME left: Maven wrote the jars elsewhere, the marker said "ok".
    (tmp_path / JAR_MANIFEST).write_text("ok\n")
    assert not jar_cache_is_complete(tmp_path)


def test_a_cache_without_the_broker_jar_is_not_trusted(tmp_path):
    (tmp_path / "kafka-clients-4.1.1.jar").write_bytes(b"PK")
    (tmp_path / JAR_MANIFEST).write_text("kafka-clients-4.1.1.jar\n")
    assert not jar_cache_is_complete(tmp_path)
