"""Propensity training's visits as of a cut-off, on random shared browsers, against the
stitching rule worked out in Python.

Training reads who each anonymous event belongs to from int_anonymous_event_owners (dbt's
stitching rule, the macro int_anonymous_weblog_rollup applies too, on every event) and counts an
event as of a cut-off only if the login that gives it came by then (`attributed_at`): that must
be the rule evaluated on the events up to the cut-off. The hand-checked test in
test_propensity.py covers one browser. Here random browsers shared by
several customers, logins at the same instant (ordered by event_id) and anonymous events at a
login's instant, seen at random cut-offs: each customer's last visit (their own events and the
anonymous events the rule gives them as of the cut-off) must be the rule's, event for event.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from customer360.propensity.features import facts_at
from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding, utc

LOGIN_PAGE = "login_success.html"
START = utc("2026-03-01T00:00:00")
DAYS = 60
CUSTOMERS = range(1, 7)
BROWSERS = 6


@dataclass(frozen=True)
class Event:
    event_id: str
    customer_id: int | None  # None: anonymous
    at: dt.datetime
    browser: str | None  # None: a logged-in event without a browser id
    login: bool = False


def random_events(rng: random.Random) -> list[Event]:
    def moment() -> dt.datetime:
        return START + dt.timedelta(minutes=rng.randrange(DAYS * 24 * 60))

    events: list[Event] = []
    n = 0

    def add(**fields) -> Event:
        nonlocal n
        n += 1
        event = Event(event_id=f"ev{n:04d}", **fields)
        events.append(event)
        return event

    for b in range(BROWSERS):
        browser = f"browser-{b}"
        logins = [
            add(customer_id=rng.choice(CUSTOMERS), at=moment(), browser=browser, login=True)
            for _ in range(rng.randrange(0, 4))
        ]
        if logins and rng.random() < 0.5:  # another customer at the same instant
            add(customer_id=rng.choice(CUSTOMERS), at=logins[0].at, browser=browser, login=True)
        for _ in range(rng.randrange(2, 8)):
            add(customer_id=None, at=moment(), browser=browser)
        if logins:  # an anonymous event at a login's instant
            add(customer_id=None, at=rng.choice(logins).at, browser=browser)
    for customer in CUSTOMERS:
        for _ in range(rng.randrange(0, 3)):
            add(customer_id=customer, at=moment(), browser=None)
    return events


def rule_last_visits(events: list[Event], cutoff: dt.datetime) -> dict[int, dt.datetime]:
    """Each customer's last visit as of `cutoff`: their own events, and each anonymous event
    given to the customer of the latest login on its browser at or before it (logins at one
    instant: the larger event_id is the later), else to the first customer to log in on it,
    counting only what happened by the cut-off."""
    seen = [e for e in events if e.at <= cutoff]
    last: dict[int, dt.datetime] = {}

    def visit(customer: int, at: dt.datetime) -> None:
        last[customer] = max(at, last.get(customer, at))

    for event in seen:
        if event.customer_id is not None:
            visit(event.customer_id, event.at)
    for event in seen:
        if event.customer_id is not None:
            continue
        logins = [e for e in seen if e.login and e.browser == event.browser]
        before = [e for e in logins if e.at <= event.at]
        if before:
            owner = max(before, key=lambda e: (e.at, e.event_id))
        elif logins:
            owner = min(logins, key=lambda e: (e.at, e.event_id))
        else:
            continue
        visit(owner.customer_id, event.at)
    return last


def landed_warehouse(path: Path, events: list[Event]) -> None:
    raw = RawLanding([path])
    for customer in CUSTOMERS:
        raw.user("snapshot", customer, customer, created_at=utc("2026-01-01T00:00:00"))
    for event in events:
        raw.weblog(
            event.event_id,
            event.customer_id,
            event.at,
            page=LOGIN_PAGE if event.login else "home.html",
            anonymous_id=event.browser,
        )
    raw.land()


@pytest.mark.parametrize("seed", [11, 23, 47])
def test_training_visits_follow_the_stitching_rule_at_any_cutoff(tmp_path, seed):
    rng = random.Random(seed)
    events = random_events(rng)
    warehouse = tmp_path / "warehouse.duckdb"
    landed_warehouse(warehouse, events)
    run_dbt(warehouse, "run", work_dir=tmp_path / "dbt")
    times = sorted({e.at for e in events})
    # some cut-offs at an event's instant (it counts), some between events, one after them all
    cutoffs = [rng.choice(times) for _ in range(4)]
    cutoffs += [rng.choice(times) + dt.timedelta(seconds=30) for _ in range(4)]
    cutoffs.append(times[-1] + dt.timedelta(days=1))
    with duckdb.connect(str(warehouse)) as con:
        for cutoff in cutoffs:
            naive = cutoff.astimezone(dt.UTC).replace(tzinfo=None)
            got = {f.customer_id: f.visit_days for f in facts_at(con, naive)}
            expected = {
                customer: (cutoff - at).total_seconds() / 86400.0
                for customer, at in rule_last_visits(events, cutoff).items()
            }
            assert {c: d for c, d in got.items() if d is not None} == pytest.approx(expected), (
                f"cut-off {cutoff}"
            )
