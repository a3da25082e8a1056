"""The cursor pool of one opened serving copy, and following the latest publication
(customer360/serving/cursor_pool.py), on a plain in-memory DuckDB database: no serving file."""

from __future__ import annotations

import threading
import time

import duckdb
import pytest

from customer360.serving.cursor_pool import CopyClosed, CopyCursorPool, LatestCopy


class Copy(CopyCursorPool):
    """A copy whose cursors are cursors of an in-memory database; records when it is let go."""

    def __init__(self, identity: tuple = (1,)) -> None:
        super().__init__(identity)
        self.con = duckdb.connect(":memory:")
        self.made = 0
        self.closed = 0

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        self.made += 1
        return self.con.cursor()

    def _close(self) -> None:
        self.closed += 1


def is_closed(cur: duckdb.DuckDBPyConnection) -> bool:
    try:
        cur.execute("select 1")
    except duckdb.ConnectionException:
        return True
    return False


def test_an_idle_cursor_is_reused_and_a_failed_one_is_not() -> None:
    copy = Copy()
    with copy.cursor() as first:
        assert first.execute("select 42").fetchone() == (42,)
    with copy.cursor() as again:
        assert again is first
    with pytest.raises(duckdb.Error), copy.cursor() as cur:
        cur.execute("select * from no_such_table")
    assert is_closed(first)  # a failed query's cursor is closed, not handed on
    with copy.cursor() as fresh:
        assert fresh is not first
    assert copy.made == 2


def test_the_callers_own_error_keeps_the_cursor() -> None:
    copy = Copy()
    with pytest.raises(LookupError), copy.cursor() as first:
        raise LookupError("no such customer")
    with copy.cursor() as again:
        assert again is first


def test_two_busy_cursors_are_two_cursors() -> None:
    copy = Copy()
    with copy.cursor() as a, copy.cursor() as b:
        assert a is not b
    with copy.cursor() as c, copy.cursor() as d:
        assert {c, d} == {a, b}  # both came back to the pool
    assert copy.made == 2


def test_a_retired_copy_is_let_go_once_its_last_cursor_is_back() -> None:
    copy = Copy()
    busy, idle = copy.acquire(), copy.acquire()
    copy.release(idle)
    copy.retire()
    assert is_closed(idle)  # idle cursors close at once
    assert copy.closed == 0  # a query is still reading it
    busy.execute("select 1")
    copy.release(busy)
    assert is_closed(busy)  # not pooled on a retired copy
    assert copy.closed == 1
    with pytest.raises(CopyClosed):
        copy.acquire()
    with pytest.raises(CopyClosed):
        copy.pin()
    copy.retire()
    assert copy.closed == 1  # let go once


def test_an_unused_copy_is_let_go_when_retired() -> None:
    copy = Copy()
    copy.retire()
    assert copy.closed == 1


def test_a_pinned_copy_stays_until_unpinned() -> None:
    """A transaction keeps its publication: retired meanwhile, it is let go after the end."""
    copy = Copy()
    copy.pin()
    with copy.cursor():
        pass
    copy.retire()
    assert copy.closed == 0
    with copy.cursor() as cur:  # the transaction's next statement reads the same copy
        assert cur.execute("select 1").fetchone() == (1,)
    assert copy.closed == 0
    copy.unpin()
    assert copy.closed == 1


def test_a_cursor_that_cannot_be_made_is_not_counted_busy() -> None:
    copy = Copy()

    def fail() -> duckdb.DuckDBPyConnection:
        raise duckdb.ConnectionException("gone")

    copy._new_cursor = fail  # type: ignore[method-assign]
    with pytest.raises(duckdb.ConnectionException):
        copy.acquire()
    copy.retire()
    assert copy.closed == 1


class Path:
    """A serving path whose publication changes when the test says so."""

    def __init__(self) -> None:
        self.publication = 1
        self.opened: list[Copy] = []

    def identity(self) -> tuple:
        return (self.publication,)

    def open(self, identity: tuple) -> Copy:
        copy = Copy(identity)
        self.opened.append(copy)
        return copy


def test_latest_copy_opens_each_publication_once_and_retires_the_old_one() -> None:
    path = Path()
    latest = LatestCopy(path.identity, path.open)
    assert latest.opened is None
    first = latest.current()
    assert latest.current() is first and latest.opened is first
    with latest.session() as (copy, cur):
        assert copy is first
        path.publication = 2
        second = latest.current()
        assert second is not first
        assert first.closed == 0  # the session still reads the first publication
        assert cur.execute("select 1").fetchone() == (1,)
    assert first.closed == 1
    assert [c.identity for c in path.opened] == [(1,), (2,)]
    assert latest.forget() is second and latest.opened is None


def test_a_copy_whose_path_moved_on_while_it_was_opened_is_opened_again() -> None:
    """A publication lands between looking at the path and opening it: the copy opened holds
    the newer file under the older identity, so it is closed, never handed out, and the path
    opened again (two opens of one file in a process would share, and lose, its lock)."""
    path = Path()
    real_open = path.open

    def open_while_publishing(identity: tuple) -> Copy:
        copy = real_open(identity)
        if len(path.opened) == 1:
            path.publication = 2  # the path moves on while the copy is being opened
        return copy

    latest = LatestCopy(path.identity, open_while_publishing)
    with latest.session() as (copy, _):
        assert copy.identity == (2,)
    mislabelled, opened_again = path.opened
    assert mislabelled.identity == (1,) and mislabelled.closed == 1 and mislabelled.made == 0
    assert opened_again is copy and copy.closed == 0


def race(latest: LatestCopy, path: Path) -> list[Copy]:
    """The next lookup of the latest copy finds it, then a newer publication replaces it and
    lets it go (its last user left) before the caller takes it. Returns the copies looked up."""
    real_current = latest.current
    found: list[Copy] = []

    def current() -> Copy:
        copy = real_current()
        if not found:
            path.publication += 1
            real_current()
            assert copy.closed == 1
        found.append(copy)
        return copy

    latest.current = current  # type: ignore[method-assign]
    return found


@pytest.mark.parametrize("take", ["acquire", "session", "pinned"])
def test_latest_copy_takes_the_newer_copy_when_the_one_it_found_was_let_go(take: str) -> None:
    """Between looking the latest copy up and taking a cursor or a pin, a newer publication may
    come and the old copy's last user leave: the newer one is taken."""
    path = Path()
    latest = LatestCopy(path.identity, path.open)
    stale = latest.current()
    found = race(latest, path)
    if take == "acquire":
        copy, cur = latest.acquire()
        copy.release(cur)
    elif take == "session":
        with latest.session() as (copy, cur):
            assert cur.execute("select 1").fetchone() == (1,)
    else:
        copy = latest.pinned()
        copy.unpin()
    assert found[0] is stale and copy is found[1] and copy.identity == (2,)
    assert copy.closed == 0


def test_many_threads_reading_while_publications_change() -> None:
    """Every cursor handed out belongs to an open copy; every retired copy is let go once."""
    path = Path()
    latest = LatestCopy(path.identity, path.open)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                with latest.session() as (copy, cur):
                    assert copy.closed == 0
                    assert cur.execute("select 1").fetchone() == (1,)
                copy = latest.pinned()
                assert copy.closed == 0
                copy.unpin()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for publication in range(2, 22):
        path.publication = publication
        latest.current()
        time.sleep(0.005)  # the readers take cursors and pins of this one meanwhile
    stop.set()
    for thread in threads:
        thread.join(10)
    assert not errors, errors
    *old, last = path.opened
    assert all(copy.closed == 1 for copy in old)
    assert last.closed == 0
