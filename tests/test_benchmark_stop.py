"""A benchmark stopped by SIGTERM (a `kill`, a CI runner's timeout) stops what it started."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from customer360.services.processes import process_alive
from tests.process_helpers import processes_with_home

pytestmark = pytest.mark.services


def test_sigterm_stops_the_sql_benchmarks_services_and_processes(tmp_path):
    home = tmp_path / "home"
    bench = subprocess.Popen(
        [sys.executable, "-m", "customer360.serving.sql_endpoint.benchmark", "load",
         "--dir", str(home), "--customers", "50", "--days", "2", "--rate", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines, pids = [], []
    try:
        for line in bench.stdout:
            lines.append(line)
            service = re.match(r"(mongo|kafka)\s+running\s+pid (\d+)", line)
            if service:
                pids.append(int(service.group(2)))
            if line.startswith("caught up"):
                break
        assert len(pids) == 2, "".join(lines)
        # the stream, then the SQL endpoint and the API, started with the scratch home
        deadline = time.monotonic() + 60
        while len(processes_with_home(home)) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        started = processes_with_home(home)
        assert len(started) >= 3, (started, "".join(lines))
        bench.send_signal(signal.SIGTERM)
        rest = bench.communicate(timeout=120)[0]
        assert bench.returncode == 128 + signal.SIGTERM, rest
    finally:
        if bench.poll() is None:
            bench.kill()
    left = [pid for pid in started | set(pids) if process_alive(pid)]
    assert not left, (left, "".join(lines) + rest)
