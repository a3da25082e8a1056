"""A probe never visible is lost unless its customer was deleted: the generator's stream deletes
customers, the probes' too, and a deleted customer has no profile to show a probe in."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from customer360.bench.probes import Probe, never_visible
from customer360.bench.report import table_lines
from customer360.bench.run import Bench, BenchConfig
from customer360.config import Settings


def probe(customer_id: int, freshness_s: float | None) -> Probe:
    return Probe(
        marker=f"m{customer_id}",
        customer_id=customer_id,
        produced_at=100.0,
        visible_at=None if freshness_s is None else 100.0 + freshness_s,
    )


def test_probes_of_a_deleted_customer_are_told_apart_from_lost_ones() -> None:
    probes = [probe(1, 0.8), probe(2, None), probe(3, None), probe(3, None), probe(4, 1.2)]
    assert never_visible(probes, customers_present={1, 2, 4}) == (1, 2)
    assert never_visible(probes, customers_present={1, 2, 3, 4}) == (3, 0)
    assert never_visible([probe(1, 0.5)], customers_present=set()) == (0, 0)


def test_the_bench_reads_which_customers_the_warehouse_still_has(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema intermediate")
        con.execute("create table intermediate.int_customers as select 1 as customer_id")
        con.execute("insert into intermediate.int_customers values (4)")
    bench = Bench(Settings(home=tmp_path, warehouse=warehouse), BenchConfig(out=tmp_path / "o"))
    assert bench.customers_present({1, 2, 3, 4}) == {1, 4}
    assert bench.result["notes"] == []


def test_an_unreadable_warehouse_counts_every_unseen_probe_as_lost(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "warehouse.duckdb"
    bench = Bench(Settings(home=tmp_path, warehouse=missing), BenchConfig(out=tmp_path / "o"))
    assert bench.customers_present({1, 2}) == {1, 2}
    assert "counts as lost" in bench.result["notes"][0]


def freshness_line(load: dict) -> str:
    lines = table_lines({"config": {"rate": 1000.0}, "load": load})
    (line,) = [x for x in lines if x.startswith("freshness (all)")]
    return line


def test_the_table_says_how_many_probes_were_for_a_deleted_customer() -> None:
    load = {"probes": 300, "probes_never_visible": 0, "probes_customer_deleted": 2}
    assert freshness_line(load).endswith(
        "300 probes, 0 never visible, 2 for a customer the stream deleted meanwhile"
    )
    load["probes_customer_deleted"] = 0
    assert freshness_line(load).endswith("300 probes, 0 never visible")


class NeverVisible:
    def visible(self, probes):
        return set()


def test_an_interrupted_bench_stops_its_probes_without_waiting_for_kafka(tmp_path: Path) -> None:
    """At Ctrl-C (or a failure) the bench abandons its probes: the producer's thread ends
    without waiting to deliver (Kafka may be stopping), and the producer is closed, so it does
    not log a failed connection every second until the process ends."""
    from customer360.bench.probes import Prober

    dead = Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:9")  # nothing listens there
    prober = Prober(dead, NeverVisible(), customer_ids=[1, 2], interval_s=0.05, poll_s=0.05)
    prober.start()
    while len(prober.probes) < 3:  # produced, never delivered
        time.sleep(0.05)
    prober.abandon()
    assert not any(thread.is_alive() for thread in prober._threads)
    prober.abandon()  # again, as the bench's `finally` may: nothing left to do


def test_a_probe_is_polled_however_old_until_the_drain_ends(tmp_path: Path) -> None:
    """A probe held up for minutes (a stall) is late, not gone: it stays polled, and is seen
    when it appears."""
    from customer360.bench.probes import Prober

    dead = Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:9")
    prober = Prober(dead, NeverVisible(), customer_ids=[1])
    old = Probe("old", 1, time.time() - 600)
    prober.probes = [old, probe(2, 0.5)]
    try:
        assert prober.pending() == [old]
    finally:
        prober.abandon()
