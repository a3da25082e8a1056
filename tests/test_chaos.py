"""The chaos soak, shortened: every fault kind at least once in ~2 minutes, and nothing wrong."""

from __future__ import annotations

import pytest

from customer360.chaos.soak import FAULT_KINDS, ChaosConfig, run_chaos
from customer360.services import services_down, services_up
from customer360.services.processes import free_port
from tests.conftest import make_service_settings


@pytest.fixture
def chaos_settings(tmp_path):
    """Services of this test alone: the soak restarts them."""
    settings = make_service_settings(tmp_path / "home").with_overrides(serve_port=free_port())
    services_up(settings)
    yield settings
    services_down(settings)


def test_short_chaos_soak_loses_nothing_and_every_number_is_right(chaos_settings):
    config = ChaosConfig(
        duration_s=75, faults_per_kind=1, rate=150, customers=150, history_days=14, seed=11
    )
    report = run_chaos(chaos_settings, config, progress=print)
    text = "\n".join(report.lines())
    print(text)
    kinds = {fault.kind for fault in report.faults}
    expected = set(FAULT_KINDS) - ({"serving_kill"} if "serving not run" in text else set())
    assert kinds == expected, text
    assert all(fault.recovered_at is not None for fault in report.faults), text
    assert report.findings.checked["bad records quarantined"] > 0, text
    assert "lost: 0" in text and "duplicates: 0" in text and "mismatches: 0" in text, text
    assert report.ok, text


SECRET = "S3cretChaosPassw0rd"


def test_a_password_in_the_mongo_uri_never_reaches_output_logs_or_errors(
    isolated_settings, tmp_path
):
    """The micro-batch path (the process the soak runs) with credentials in the Mongo URI:
    whatever fails, neither its output, its errors nor the files it writes hold the password."""
    import subprocess
    import sys

    from customer360.chaos.faults import process_env
    from tests.conftest import REPO

    host_port = isolated_settings.mongo_uri.split("//", 1)[1]
    settings = isolated_settings.with_overrides(
        mongo_uri=f"mongodb://chaos:{SECRET}@{host_port}/?serverSelectionTimeoutMS=2000",
        home=tmp_path / "home",
    )
    result = subprocess.run(
        [sys.executable, "-m", "customer360.cli", "-v", "run-once", "--json"],
        cwd=REPO,
        env=process_env(settings),
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
