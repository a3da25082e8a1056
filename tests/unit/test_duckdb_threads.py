"""The warehouse's DuckDB threads for a batch (customer360/pipeline/microbatch.py)."""

from customer360.pipeline.microbatch import duckdb_threads
from customer360.pipeline.model_replay import REPLAY_CONNECTIONS


def test_a_live_batch_gives_each_replay_connection_its_share_of_the_cores():
    assert REPLAY_CONNECTIONS == 2
    assert [duckdb_threads(cores, backlog=False) for cores in (1, 2, 3, 4, 8)] == [1, 1, 1, 2, 4]


def test_a_backlog_batch_has_every_core():
    assert [duckdb_threads(cores, backlog=True) for cores in (1, 2, 8)] == [1, 2, 8]
