"""`c360 run-once` and `c360 extract` while another process writes the warehouse: one line that
names the holder and what to stop, after the usual wait, not a traceback."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest

import customer360.cli as cli
import extractors.runner
from customer360.services.processes import free_kafka_port, free_port
from extractors.warehouse import connect_warehouse

# Holds the warehouse's write lock until its stdin closes.
HOLD = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
    "sys.stdin.read()"
)


@pytest.mark.parametrize("argv", [["run-once"], ["extract", "--source", "users"]])
def test_a_locked_warehouse_is_one_line_naming_the_other_writer(
    tmp_path, monkeypatch, capsys, argv
):
    warehouse = tmp_path / "warehouse.duckdb"
    for name, value in {
        "C360_HOME": tmp_path / "home",
        "C360_WAREHOUSE": warehouse,
        # Nothing answers here: the warehouse is opened before any source is asked.
        "C360_MONGO_URI": f"mongodb://127.0.0.1:{free_port()}",
        "C360_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_kafka_port()}",
    }.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setattr(cli, "install_stop_handlers", lambda: None)
    # The wait before giving up (30 s) is the extractor's; a test need not sit through it.
    monkeypatch.setattr(
        extractors.runner,
        "connect_warehouse",
        functools.partial(connect_warehouse, lock_wait_s=0.3),
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        assert cli.main(argv) == 1
    finally:
        holder.stdin.close()
        holder.wait(10)
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"c360 {argv[0]}: The warehouse {warehouse} stayed locked"), err
    assert f"(PID {holder.pid})" in err[-1] and "stop the other writer" in err[-1]
