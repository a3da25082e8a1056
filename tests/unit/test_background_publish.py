"""Publishing the serving copy beside the next micro-batch (pipeline/background_publish.py)."""

from __future__ import annotations

import threading

import pytest

from customer360.pipeline.background_publish import BackgroundPublisher


class GatedPublish:
    """A publication that blocks until let go, and counts how many ran and overlapped."""

    def __init__(self):
        self.started = threading.Semaphore(0)
        self.go = threading.Semaphore(0)
        self.ran = 0
        self.running = 0
        self.most_at_once = 0
        self.fail_next = False

    def __call__(self):
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.started.release()
        self.go.acquire()
        self.running -= 1
        self.ran += 1
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("disk full")
        return f"publication {self.ran}"


def test_requests_during_a_publication_fold_into_one_more_and_results_are_handed_out_once():
    publish = GatedPublish()
    publisher = BackgroundPublisher(publish)
    assert publisher.request() is None  # nothing ended yet
    assert publish.started.acquire(timeout=5)
    publisher.request()  # while the first runs: one more after it
    publisher.request()
    publish.go.release()
    assert publish.started.acquire(timeout=5)
    publish.go.release()
    publisher.wait_idle()
    assert publish.ran == 2 and publish.most_at_once == 1
    publisher.request()  # hands out the latest that ended, once
    assert publish.started.acquire(timeout=5)
    publish.go.release()
    publisher.wait_idle()
    assert publisher.close() == "publication 3"


def test_a_failed_publication_is_raised_to_the_next_request_which_still_stands():
    publish = GatedPublish()
    publisher = BackgroundPublisher(publish)
    publish.fail_next = True
    publisher.request()
    assert publish.started.acquire(timeout=5)
    publish.go.release()
    publisher.wait_idle()
    with pytest.raises(RuntimeError, match="disk full"):
        publisher.request()
    assert publish.started.acquire(timeout=5)  # the request that raised is published
    publish.go.release()
    publisher.wait_idle()
    assert publisher.close() == "publication 2"


def test_paused_waits_for_what_was_asked_and_starts_nothing_inside():
    publish = GatedPublish()
    publisher = BackgroundPublisher(publish)
    publisher.request()
    assert publish.started.acquire(timeout=5)
    publisher.request()  # asked for before the pause: published before the block begins
    entered = threading.Event()

    def build():
        with publisher.paused():
            entered.set()
            publisher.request()  # a build's batch asks only after it; held until the block ends
            assert not publish.started.acquire(timeout=0.3)

    builder = threading.Thread(target=build)
    builder.start()
    assert not entered.wait(0.2)  # the running publication holds the pause off
    publish.go.release()
    assert publish.started.acquire(timeout=5)  # the one asked for before the pause
    assert not entered.wait(0.2)
    publish.go.release()
    assert entered.wait(5)
    builder.join()
    assert publish.started.acquire(timeout=5)  # after the block
    publish.go.release()
    publisher.wait_idle()
    assert publish.ran == 3 and publish.most_at_once == 1
    publisher.close()


def test_close_finishes_the_publication_asked_for():
    publish = GatedPublish()
    publisher = BackgroundPublisher(publish)
    publisher.request()
    assert publish.started.acquire(timeout=5)
    publisher.request()
    closer = threading.Thread(target=publisher.close)
    closer.start()
    publish.go.release()
    assert publish.started.acquire(timeout=5)
    publish.go.release()
    closer.join(timeout=5)
    assert not closer.is_alive() and publish.ran == 2
