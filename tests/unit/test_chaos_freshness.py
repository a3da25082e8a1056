"""The soak's freshness per source: read from a serving copy, worst per fault, in the report.

A Kafka outage while MongoDB changes still land left the soak's one freshness figure (now minus
the copy's greatest `as_of`, over every source) fresh; per source it shows.
"""

from datetime import UTC, datetime, timedelta

import duckdb

from customer360.chaos.freshness import Staleness, sample_serving, worst
from customer360.chaos.soak import ChaosConfig, ChaosReport, FaultRecord

NOW = datetime(2026, 12, 6, 12, 0, 0)


def epoch(value: datetime) -> float:
    """The copy's timestamps are UTC without a zone."""
    return value.replace(tzinfo=UTC).timestamp()


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def serving_copy(path, rows_360, identities) -> None:
    con = duckdb.connect(str(path))
    con.execute("create table serving_publication (published_at timestamp, data_as_of timestamp)")
    con.execute("insert into serving_publication values (?, ?)", [NOW, ago(1)])
    con.execute(
        "create table customer_360_base (customer_id bigint, last_online_order_at timestamp,"
        " last_instore_order_at timestamp, last_website_visit_at timestamp,"
        " last_email_sent_at timestamp, last_email_opened_at timestamp,"
        " last_email_clicked_at timestamp)"
    )
    con.executemany("insert into customer_360_base values (?, ?, ?, ?, ?, ?, ?)", rows_360)
    con.execute(
        "create table customer_identities (customer_id bigint, identifier_type varchar,"
        " identifier varchar, first_seen_at timestamp, last_seen_at timestamp)"
    )
    con.executemany("insert into customer_identities values (?, ?, ?, ?, ?)", identities)
    con.close()


def test_each_source_is_its_newest_event_the_copy_reflects(tmp_path):
    path = tmp_path / "serving.duckdb"
    serving_copy(
        path,
        [
            # online order 5 s ago, no in-store order, a visit 40 s ago, an email opened 30 s
            # ago (sent before), clicked never
            (1, ago(5), None, ago(40), ago(90), ago(30), None),
            # an older order, an in-store order 12 s ago, an email clicked 33 s ago
            (2, ago(50), ago(12), ago(45), ago(100), None, ago(33)),
        ],
        [
            (1, "customer_id", "1", ago(900), ago(7)),
            (2, "customer_id", "2", ago(900), ago(3)),
            # another identifier type is not the users document's time
            (2, "email", "b@example.com", ago(900), ago(1)),
        ],
    )
    sample = sample_serving(path, epoch(NOW))
    assert sample is not None
    assert round(sample.overall, 3) == 1.0
    assert {k: round(v, 3) for k, v in sample.by_source.items()} == {
        "users": 3.0,
        "online_orders": 5.0,
        "instore_orders": 12.0,
        "weblogs": 40.0,
        "marketing_emails": 30.0,
    }


def test_a_copy_that_cannot_be_read_gives_no_sample(tmp_path):
    assert sample_serving(tmp_path / "missing.duckdb", epoch(NOW)) is None
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()  # no serving tables: an older layout, say
    assert sample_serving(other, epoch(NOW)) is None


def test_worst_takes_each_source_maximum_inside_the_window():
    samples = [
        Staleness(at=10.0, overall=1.0, by_source={"weblogs": 1.0, "users": 9.0}),
        Staleness(at=20.0, overall=2.0, by_source={"weblogs": 30.0, "users": 1.0}),
        Staleness(at=30.0, overall=None, by_source={"weblogs": 4.0}),
        Staleness(at=99.0, overall=50.0, by_source={"weblogs": 50.0, "users": 50.0}),
    ]
    during = worst(samples, 10.0, 30.0)
    assert during.overall == 2.0
    assert during.by_source == {"weblogs": 30.0, "users": 9.0}
    assert worst(samples, 40.0, 90.0) is None


def test_the_report_names_the_stalest_source_per_fault_and_per_kind():
    config = ChaosConfig(mode="dagster")
    kafka = FaultRecord(
        "kafka_restart", at=100.0, back_at=103.0, recovered_at=110.0, max_staleness_s=2.0,
        max_staleness_by_source={"weblogs": 31.5, "marketing_emails": 29.0, "users": 1.5},
    )  # fmt: skip
    mongo = FaultRecord(
        "mongo_restart", at=200.0, back_at=201.0, recovered_at=205.0, max_staleness_s=3.0,
        max_staleness_by_source={"weblogs": 1.0, "users": 8.25},
    )  # fmt: skip
    report = ChaosReport(config, faults=[kafka, mongo])
    lines = report.lines()
    assert "  by source (s): weblogs 31.5, marketing_emails 29.0, users 8.2" in lines
    assert any("kafka_restart" in line and "weblogs 31.5 s" in line for line in lines)
    assert (
        "  kafka_restart    worst freshness by source (s): weblogs 31.5, marketing_emails 29.0,"
        " users 1.5" in lines
    )
    assert "  mongo_restart    worst freshness by source (s): users 8.2, weblogs 1.0" in lines
    faults = report.result()["faults"]
    assert faults[0]["max_staleness_by_source"]["weblogs"] == 31.5
