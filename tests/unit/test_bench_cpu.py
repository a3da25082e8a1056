"""`c360 bench` says who had the CPU during the load: each process tree's cores, the stream's
Dagster run on its own, and the report's line for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from customer360.bench.processes import CpuSampler, process_table, process_tree
from customer360.bench.report import table_lines

BUSY = "while True: pass"


def test_cpu_is_counted_per_tree_with_a_carved_out_process() -> None:
    # A parent that sleeps, with a busy child: the child is carved out under its own name.
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         f"subprocess.Popen([sys.executable, '-c', {BUSY!r}])\n"
         "time.sleep(60)\n"],
        start_new_session=True,
    )  # fmt: skip
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 20
        while len(process_tree(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        (busy_pid,) = [pid for pid in process_tree(parent.pid) if pid != parent.pid]
        sampler = CpuSampler()
        sampler.track("parent", parent.pid)
        sampler.track("idle", idle.pid)
        sampler.track_self("this test")
        sampler.carve_out(lambda: {busy_pid: "busy child"})
        sampler.open()
        time.sleep(1.5)
        cores = sampler.close()
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(parent.pid)], check=False)
        idle.kill()
        parent.wait()
        idle.wait()
    assert set(cores) == {"parent", "idle", "this test", "busy child"}
    # A busy loop gets some CPU even on a loaded machine; sleeping processes get next to none.
    assert cores["busy child"] > 0
    assert cores["busy child"] > cores["parent"]
    assert cores["busy child"] > cores["idle"]
    assert list(cores) == sorted(cores, key=lambda name: -cores[name])


def test_the_process_table_has_parents_and_a_gone_process_has_no_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        table = process_table()
        assert table[child.pid].parent == os.getpid()
        assert child.pid in process_tree(os.getpid(), table)
    finally:
        child.kill()
        child.wait()
    assert child.pid not in process_table()
    assert process_tree(child.pid) == []


def test_the_report_names_who_had_the_cores() -> None:
    result = {
        "mode": "dagster",
        "config": {"rate": 1000.0},
        "machine": {"cpus": 2},
        "cpu_cores_during_load": {
            "micro-batch stream (Dagster run)": 0.51,
            "api": 0.496,
            "kafka": 0.28,
            "dagster-webserver": 0.004,
        },
    }
    (line,) = [line for line in table_lines(result) if line.startswith("CPU in the load")]
    assert line == (
        "CPU in the load    cores used of 2: micro-batch stream (Dagster run) 0.51, api 0.50, "
        "kafka 0.28 (total 1.29)"
    )
