"""The purchase-propensity features, as of a cutoff time, for training.

The features the model scores with are computed in dbt (`dbt/models/marts/customer_propensity.sql`,
from customer_360_base at the model's reference time); training needs the same features as of
past cutoffs, with a label (an order in the 30 days after). So the facts are read here from the
models customer_360_base reads them from, identity stitching included (guest till sales matched
to a customer by email, anonymous website events stitched to a customer by a login on the same
browser), with every row after the cutoff left out, and turned into features by `feature_row`,
which follows the dbt model's `feature_values` step expression for expression.
`tests/test_propensity.py` checks that the two agree: the features computed here at a model's
reference time equal the dbt model's, and sklearn's probability equals its score.

As of a cutoff, an attribution counts only if it was known then (see FACTS_SQL): a feature must
not carry what happened after the cutoff, which is what the label measures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

# The features, in the order of the coefficients (and of the dbt model's reasons).
FEATURES = (
    "days_since_last_order",
    "log_orders",
    "log_spend",
    "log_tenure_days",
    "days_since_last_visit",
    "days_since_last_email_open",
)
# Recencies are capped here (and are this when there is no such event).
MAX_DAYS = 365.0
# The label: an order (either channel) within this many days after the cutoff.
HORIZON_DAYS = 30


@dataclass(frozen=True)
class Facts:
    """A customer's history as of a time: elapsed days are None when there is no such event."""

    customer_id: int
    order_days: float | None  # since the last order
    total_orders: int
    total_amount_spent: float
    tenure_days: float | None  # since created_at
    visit_days: float | None  # since the last website event
    email_open_days: float | None  # since the latest first open of an email
    ordered_next: bool | None = None  # the label, when the horizon is in the data


def recency(days: float | None) -> float:
    return min(MAX_DAYS, max(0.0, MAX_DAYS if days is None else days))


def feature_row(facts: Facts) -> list[float]:
    """The features of `FEATURES`, as dbt's customer_propensity computes them."""
    return [
        recency(facts.order_days),
        math.log(1 + facts.total_orders),
        math.log(1 + max(0.0, facts.total_amount_spent)),
        math.log(1 + max(0.0, 0.0 if facts.tenure_days is None else facts.tenure_days)),
        recency(facts.visit_days),
        recency(facts.email_open_days),
    ]


# Elapsed days as dbt-duckdb's `dbt.datediff(..., 'second')` / 86400.0 gives them.
def _days(column: str) -> str:
    return f"date_diff('second', {column}::timestamp, $cutoff::timestamp) / 86400.0"


# Every customer who existed at $cutoff (created_at at or before it, or unknown), with their
# facts from the rows at or before it, and the label from the orders in the horizon after it.
# At most $limit customers, a fixed pseudo-random sample (by a hash of the id) when more.
#
# The facts are customer_360_base's, from the same models:
# - orders: those with a user_id (staging) and the guest till sales int_guest_order_owners
#   matched by email; spend: their line items (int_customer_order_items). A guest sale's
#   attribution needs no re-evaluation as of the cutoff: an address held by a users change
#   matches only orders made after that change, and a customer's first address also holds before
#   it ("a guest sale before the customer registered"), but a customer registered after the
#   cutoff is no example at that cutoff (`customers`), and a holder who appears later neither
#   takes nor makes ambiguous an order already matched (dbt/README.md, "Identity stitching").
#   (Known limit: an order is read in its current state, as before: an address corrected or a
#   deletion after the cutoff counts as if it were known then.)
# - visits: the customer's logged-in events (stg_weblogs, as int_weblog_rollup) and the anonymous
#   events stitched to them (int_anonymous_event_owners: dbt's stitching rule on every event).
#   That rule does depend on later data: an event before any login on its browser goes to the
#   first customer who logs in with it, whenever that is. A login after the cutoff would put
#   visits before it on the profile of a customer who came back after it, a glimpse of the
#   label; so an event counts only if its owner was known by the cutoff (`attributed_at`, the
#   time of the login that gives it: the rule evaluated on the events up to the cutoff gives an
#   event at or before it the same owner exactly then, see the model). Scoring reads the rollup
#   at the reference time, when every event counted is at or before it: the same rule on the
#   same events.
FACTS_SQL = f"""
with
customers as (
    select customer_id, created_at
    from intermediate.int_customers
    where created_at is null or created_at <= $cutoff
),
orders as (
    select customer_id, ordered_at from staging.stg_online_orders where not is_deleted
    union all
    select customer_id, ordered_at from staging.stg_instore_orders where not is_deleted
    union all
    select customer_id, ordered_at from intermediate.int_guest_order_owners
    where attribution = 'email' and not is_deleted
),
past_orders as (
    select customer_id, max(ordered_at) as last_order_at, count(*) as total_orders
    from orders where ordered_at <= $cutoff group by customer_id
),
ordered_next as (
    select distinct customer_id from orders
    where ordered_at > $cutoff and ordered_at <= $cutoff + to_days({HORIZON_DAYS})
),
spend as (
    select customer_id, sum(amount) as total_amount_spent
    from intermediate.int_customer_order_items
    where not is_deleted and ordered_at <= $cutoff
    group by customer_id
),
stitched_events as (
    select customer_id, event_at
    from intermediate.int_anonymous_event_owners
    where event_at <= $cutoff and attributed_at <= $cutoff
),
visits as (
    select customer_id, max(event_at) as last_visit_at
    from (
        select customer_id, event_at from staging.stg_weblogs
        where customer_id is not null and event_at <= $cutoff
        union all
        select customer_id, event_at from stitched_events
    ) as events
    group by customer_id
),
email_opens as (
    select customer_id, max(first_opened_at) as last_email_opened_at
    from staging.stg_marketing_emails where first_opened_at <= $cutoff group by customer_id
),
sampled as (
    select * from customers order by hash(customer_id), customer_id limit $limit
)
select
    sampled.customer_id,
    {_days("past_orders.last_order_at")} as order_days,
    coalesce(past_orders.total_orders, 0) as total_orders,
    cast(coalesce(spend.total_amount_spent, 0) as double) as total_amount_spent,
    {_days("sampled.created_at")} as tenure_days,
    {_days("visits.last_visit_at")} as visit_days,
    {_days("email_opens.last_email_opened_at")} as email_open_days,
    ordered_next.customer_id is not null as ordered_next
from sampled
left join past_orders on past_orders.customer_id = sampled.customer_id
left join ordered_next on ordered_next.customer_id = sampled.customer_id
left join spend on spend.customer_id = sampled.customer_id
left join visits on visits.customer_id = sampled.customer_id
left join email_opens on email_opens.customer_id = sampled.customer_id
order by sampled.customer_id
"""


def facts_at(
    con: duckdb.DuckDBPyConnection, cutoff: datetime, limit: int = 1_000_000_000
) -> list[Facts]:
    """Every existing customer's facts as of `cutoff` (naive UTC), at most `limit` of them."""
    rows = con.execute(FACTS_SQL, {"cutoff": cutoff, "limit": limit}).fetchall()
    return [Facts(*row) for row in rows]


def latest_order_at(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The latest order time in the data (not after now): "now" for training, in data time."""
    return con.execute(
        """
        select least(max(ordered_at), current_timestamp::timestamp) from (
            select ordered_at from staging.stg_online_orders where not is_deleted
            union all
            select ordered_at from staging.stg_instore_orders where not is_deleted
        )
        """
    ).fetchone()[0]


def cutoffs(reference_at: datetime) -> tuple[datetime, datetime]:
    """(training cutoff, validation cutoff): two and one horizons before the reference time,
    so the validation examples' labels are the latest whole horizon in the data."""
    horizon = timedelta(days=HORIZON_DAYS)
    return reference_at - 2 * horizon, reference_at - horizon


def matrix(rows: Sequence[Facts]) -> list[list[float]]:
    return [feature_row(facts) for facts in rows]
