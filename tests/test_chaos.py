"""The chaos soak, shortened: every fault kind at least once in ~2 minutes, and nothing wrong."""

from __future__ import annotations

import json

import pytest

from customer360.chaos.oracle import KafkaMessage
from customer360.chaos.soak import ChaosConfig, fault_kinds, run_chaos
from customer360.services import services_down, services_up
from customer360.services.processes import free_port
from tests.conftest import make_service_settings

# The plain loop: in Dagster mode (`c360 chaos`'s default, daemon SIGKILLed mid-run) the same
# soak takes ~5 min here (the daemon starts in ~20 s, a sensor-requested run launches in 5-15 s),
# over this test's budget; the 10-minute `c360 chaos` covers Dagster mode.
MODE = "loop"


@pytest.fixture
def chaos_settings(tmp_path):
    """Services of this test alone: the soak restarts them."""
    settings = make_service_settings(tmp_path / "home").with_overrides(serve_port=free_port())
    services_up(settings)
    yield settings
    services_down(settings)


@pytest.mark.services  # chaos_settings starts services of its own
def test_short_chaos_soak_loses_nothing_and_every_number_is_right(chaos_settings):
    # A new seed every run (printed in the report): --seed reproduces a failure.
    config = ChaosConfig(
        duration_s=75, faults_per_kind=1, rate=150, customers=150, history_days=14, mode=MODE
    )
    report = run_chaos(chaos_settings, config, progress=print)
    text = "\n".join(report.lines())
    print(text)
    assert f"seed {report.seed}" in text
    kinds = {fault.kind for fault in report.faults}
    expected = set(fault_kinds(MODE)) - ({"serving_kill"} if "serving not run" in text else set())
    assert kinds == expected, text
    assert all(fault.recovered_at is not None for fault in report.faults), text
    assert report.findings.checked["bad records quarantined"] > 0, text
    # Identity data (seed and stream default): anonymous browsing stitched by the oracle, and its
    # customer_identities and audience membership compared with the marts and the serving copy.
    assert "anonymous_weblog" in report.stream_summary, report.stream_summary
    for label in ("oracle vs marts", "oracle vs serving copy"):
        assert report.findings.checked[f"{label}: customer_identities rows"] > 0, text
        assert f"{label}: customer_audiences rows" in report.findings.checked, text
    assert "lost: 0" in text and "duplicates: 0" in text and "mismatches: 0" in text, text
    # Every failed micro-batch is explained by an injected fault (customer360/chaos/runs.py).
    assert report.batch_runs.succeeded > 0, text
    assert report.batch_runs.unexplained == [], text
    assert " 0 failed unexplained" in text, text
    result = chaos_settings.home.absolute() / "chaos" / report.run / "result.json"
    assert json.loads(result.read_text())["runs"]["failed_unexplained"] == 0
    assert report.ok, text


SECRET = "S3cretChaosPassw0rd"


def test_a_password_in_the_mongo_uri_never_reaches_output_logs_or_errors(
    isolated_settings, tmp_path
):
    """The micro-batch path (the process the soak runs) with credentials in the Mongo URI:
    whatever fails, neither its output, its errors nor the files it writes hold the password."""
    import subprocess
    import sys

    from tests.conftest import REPO

    host_port = isolated_settings.mongo_uri.split("//", 1)[1]
    settings = isolated_settings.with_overrides(
        mongo_uri=f"mongodb://chaos:{SECRET}@{host_port}/?serverSelectionTimeoutMS=2000",
        home=tmp_path / "home",
    )
    result = subprocess.run(
        [sys.executable, "-m", "customer360.cli", "-v", "run-once", "--json"],
        cwd=REPO,
        env=settings.environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.stdout.strip(), output  # it ran and reported
    assert SECRET not in output
    for path in [*settings.home.rglob("*"), *settings.warehouse.parent.glob("*.json")]:
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert SECRET.encode() not in path.read_bytes(), f"{path} holds the password"


def _weblog(partition: int, offset: int, event_id: str, user_id: int, page: str = "home.html"):
    value = {"event_id": event_id, "user_id": user_id, "date": "2026-01-01T00:00:00+00:00",
             "page": page, "action": "view"}  # fmt: skip
    return KafkaMessage("weblogs", partition, offset, None, json.dumps(value).encode())


def test_the_oracle_keeps_the_weblog_staging_keeps_and_names_what_it_cannot_decide():
    """stg_weblogs keeps the first valid record landed per event_id (batch, partition, offset):
    within a partition the lowest offset; across partitions only identical contents are
    decidable without knowing the landing batches."""
    from customer360.chaos.oracle import first_weblogs

    messages = [
        _weblog(1, 9, "same-partition", 2, "cart.html"),
        _weblog(1, 4, "same-partition", 1, "home.html"),
        _weblog(0, 7, "identical", 3),
        _weblog(2, 1, "identical", 3),
        KafkaMessage("weblogs", 0, 1, None, b"{not json"),
        _weblog(2, 5, "differs", 4),
        _weblog(0, 6, "differs", 5),
    ]
    kept, undecidable = first_weblogs(messages)
    by_id = {w["id"]: w for w in kept}
    assert by_id["same-partition"]["customer_id"] == 1
    assert by_id["identical"]["customer_id"] == 3
    assert len(undecidable) == 1 and "event_id differs" in undecidable[0]


def test_a_mart_row_counts_lost_only_when_its_key_is_missing():
    from datetime import datetime

    from customer360.chaos.verify import compare_marts

    at = datetime(2026, 1, 1)
    expected = {"customer_recent_errors": {(1, "E", "a.html", at, 2), (1, "E", "b.html", at, 1)}}
    actual = {"customer_recent_errors": {(1, "E", "a.html", at, 3)}}
    found = compare_marts(expected, actual, "test")
    assert (found.lost, found.mismatches) == (1, 1), found.examples
