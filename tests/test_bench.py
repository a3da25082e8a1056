"""`c360 bench` at tiny settings against the test services, in its default mode (Dagster, as
`c360 up` runs the pipeline): it runs and writes sane outputs.

No timing assertions: the machines running the tests are shared and noisy; the figures are for
the README's Performance section, measured with the defaults.
"""

from __future__ import annotations

import argparse
import json

import pytest

from customer360.bench.cli import register

pytestmark = pytest.mark.services  # the bench seeds, streams and lands through Kafka and MongoDB


def test_bench_runs_and_writes_result_plot_and_table(isolated_settings, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    out = tmp_path / "bench"
    args = parser.parse_args(
        ["bench", "--customers", "50", "--history-events", "2000", "--rate", "50",
         "--duration", "10", "--backlog-events", "500", "--out", str(out),
         "--use-configured-services"]
    )  # fmt: skip

    assert args.func(args, isolated_settings) == 0

    result = json.loads((out / "result.json").read_text())
    assert (out / "freshness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["mode"] == "dagster"
    assert result["read_path"] == "serving-copy"
    assert result["history"]["events"] > 0
    load = result["load"]
    # The load's window starts with the generator's first event, not when its process started.
    assert not [note for note in result["notes"] if "never said it started" in note]
    assert load["window"][0] == result["steps"][0]["start"]
    assert load["probes"] >= 5
    fresh = load["freshness_s"]
    assert fresh["count"] > 0
    assert 0 < fresh["p50"] <= fresh["p95"] <= fresh["p99"] <= fresh["max"]
    assert load["landed_events_per_s"] > 0
    # The split of each batch, from the stream run's log.
    batch = load["microbatch"]
    assert batch["count"] > 0 and batch["records"] > 0
    assert batch["dbt_s"]["p50"] > 0
    # Dagster showed the probes landed (raw/weblogs materializations), and the stream's run was
    # stopped through Dagster.
    dagster = load["dagster"]
    assert dagster["probes_reported"] > 0
    assert dagster["probe_to_dagster_report_s"]["p50"] > 0
    assert dagster["stream_runs"].get("CANCELED", 0) >= 1, dagster
    assert "FAILURE" not in dagster["stream_runs"], dagster
    # Other jobs' runs during the load (a nightly writer), each also in the notes.
    for run in dagster["other_runs_during_load"]:
        assert any(n.startswith(f"{run['job']} started") for n in result["notes"]), result
    assert load["api_profile_lookup_ms"]["requests"] > 0
    post = result["post_load"]
    assert post["catch_up"]["landed_records"] > 0
    assert post["incremental"]["new_events"] > 0
    # Its publication updated a slot one batch behind, as a live stream's does: after an
    # untimed batch of the same size, not right after the catch-up.
    assert post["incremental"]["warm_up_microbatches"] > 0
    assert post["incremental"]["customers_replaced"] > 0
    # Timed as the stream runs them: the batches replay dbt's statements (post_load.learn_replay)
    for phase in ("catch_up", "incremental"):
        assert post[phase]["replayed_microbatches"] == post[phase]["microbatches"] > 0, post[phase]
    assert post["full_refresh"]["dbt_run_s"] > 0
    assert set(result["peak_rss_mb"]) >= {"dagster-daemon", "dagster-webserver", "api", "stream-50"}
    assert all(mb > 0 for mb in result["peak_rss_mb"].values())
    # Who had the cores during the load: the stream's Dagster run on its own, beside the rest.
    cpu = result["cpu_cores_during_load"]
    assert set(cpu) >= {"micro-batch stream (Dagster run)", "dagster-daemon", "api", "stream-50"}
    assert cpu["micro-batch stream (Dagster run)"] > 0
    table = capsys.readouterr().out
    assert "freshness (all)" in table and "incremental" in table
    assert "CPU in the load    cores used of" in table
    assert "from the stream run's log" in table and "raw/weblogs materialization" in table
