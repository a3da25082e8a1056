"""A benchmark stopped by SIGTERM (a `kill`, a CI runner's timeout) stops what it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.services


def _processes_of_home(home: Path) -> list[int]:
    """Processes started for the scratch home `home`: its C360_HOME in their environment."""
    marker = f"C360_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


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
        while len(_processes_of_home(home)) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        started = _processes_of_home(home)
        assert len(started) >= 3, (started, "".join(lines))
        bench.send_signal(signal.SIGTERM)
        rest = bench.communicate(timeout=120)[0]
        assert bench.returncode == 128 + signal.SIGTERM, rest
    finally:
        if bench.poll() is None:
            bench.kill()
    left = [pid for pid in set(started + pids) if _alive(pid)]
    assert not left, (left, "".join(lines) + rest)
