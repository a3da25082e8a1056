"""Who waits for dbt in this process (customer360/pipeline/dbt_invoker.py): the paced data
tests hurry when a batch does."""

from __future__ import annotations

import threading
import time

from customer360.pipeline import dbt_invoker
from customer360.pipeline.dbt_invoker import others_wait_for_dbt


def test_a_thread_waiting_for_dbt_is_seen_until_it_has_it() -> None:
    holding, release, got_it = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with dbt_invoker._dbt_held(), dbt_invoker._dbt_held():  # re-entrant: no wait
            holding.set()
            release.wait(30)

    def wait_for_dbt() -> None:
        with dbt_invoker._dbt_held():
            got_it.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(30)
    assert not others_wait_for_dbt()
    waiter = threading.Thread(target=wait_for_dbt)
    waiter.start()
    deadline = time.monotonic() + 30
    while not others_wait_for_dbt():
        assert time.monotonic() < deadline, "the waiting thread was never counted"
        time.sleep(0.01)
    assert not got_it.is_set()
    release.set()
    assert got_it.wait(30)
    holder.join(30)
    waiter.join(30)
    assert not others_wait_for_dbt()
