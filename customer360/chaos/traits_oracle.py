"""customer_traits as the chaos oracle expects it, in plain Python.

Independent of dbt's SQL: the rules written in dbt/models/marts/customer_traits.yml, applied to
the orders the oracle reads from MongoDB (oracle.py), with the RFM tables of dbt_project.yml's
vars (the tables are the contract; the rules that read them are written again here).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import yaml

from customer360.chaos.identity_oracle import WHITESPACE
from customer360.serving.profile_traits import TRAIT_COLUMNS

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt" / "dbt_project.yml"
CENT = Decimal("0.01")
MICRO = Decimal("0.000001")
# The columns compared, as in customer_traits (customer_id first).
TRAITS_COLUMNS = ("customer_id", *TRAIT_COLUMNS)


@dataclass
class CustomerOrders:
    """One customer's sales: orders that count (not deleted, not rejected) and are sales
    (`is_sale`: not cancelled or returned)."""

    # channel ('Online' / 'Instore') -> [orders, amount, latest order time]
    channels: dict[str, list] = field(default_factory=dict)
    dates: list[date] = field(default_factory=list)
    # category -> [lines, amount, latest order time]
    categories: dict[str, list] = field(default_factory=dict)

    def add(self, channel: str, ordered_at: datetime, lines: list[tuple[str | None, Decimal]]):
        """An order: its channel, time and (category, amount) per line."""
        row = self.channels.setdefault(channel, [0, Decimal(0), ordered_at])
        row[0] += 1
        row[1] += sum((amount for _, amount in lines), Decimal(0))
        row[2] = max(row[2], ordered_at)
        self.dates.append(ordered_at.date())
        for category, amount in lines:
            if category is None:
                continue
            line = self.categories.setdefault(category, [0, Decimal(0), ordered_at])
            line[0] += 1
            line[1] += amount
            line[2] = max(line[2], ordered_at)


def project_vars() -> dict:
    return yaml.safe_load(DBT_PROJECT.read_text())["vars"]


def rfm_tables() -> tuple[list[dict], list[dict]]:
    variables = project_vars()
    return variables["rfm_thresholds"], sorted(
        variables["rfm_segments"], key=lambda r: r["priority"]
    )


def not_sold_statuses() -> frozenset[str]:
    """The statuses that make an online order no sale (the var order_statuses_not_sold)."""
    return frozenset(status.lower() for status in project_vars()["order_statuses_not_sold"])


def is_sale(channel: str, status: object, not_sold: frozenset[str]) -> bool:
    """Whether an order counts in the traits: every in-store order (the contract gives them no
    status), and an online order unless its status, trimmed and lower-cased, is not sold."""
    if channel != "Online" or not isinstance(status, str):
        return True
    return status.strip(WHITESPACE).lower() not in not_sold


def expected_traits(
    customers: set[int], orders: dict[int, CustomerOrders], today: date
) -> set[tuple]:
    thresholds, segments = rfm_tables()
    out = set()
    for customer_id in customers:
        mine = orders.get(customer_id) or CustomerOrders()
        online = mine.channels.get("Online", [0, Decimal(0), None])
        instore = mine.channels.get("Instore", [0, Decimal(0), None])
        count = online[0] + instore[0]
        value = (online[1] + instore[1]).quantize(MICRO)
        ago = [(today - day).days for day in mine.dates]
        if count == 0:
            nothing = (None, 0, 0, 0, None, None, None, None, None, None, None, None)
            out.add((customer_id, value, *nothing, "prospect"))
            continue
        since_last, since_first = min(ago), max(ago)
        if online[0] != instore[0]:
            channel = "online" if online[0] > instore[0] else "instore"
        elif online[1] != instore[1]:
            channel = "online" if online[1] > instore[1] else "instore"
        else:
            channel = "instore" if instore[2] > online[2] else "online"
        category = None
        if mine.categories:
            # Most lines, then most spent, then latest, then name A-Z.
            category = min(
                mine.categories.items(),
                key=lambda kv: (-kv[1][0], -kv[1][1], -kv[1][2].timestamp(), kv[0]),
            )[0]
        recency = max(
            t["score"]
            for t in thresholds
            if t["recency_within_days"] is None or since_last < t["recency_within_days"]
        )
        frequency = max(t["score"] for t in thresholds if count >= t["frequency_min_orders"])
        monetary = max(t["score"] for t in thresholds if value >= t["monetary_min_value"])
        segment = next(
            s["segment"]
            for s in segments
            if s["r_min"] <= recency <= s["r_max"]
            and s["f_min"] <= frequency <= s["f_max"]
            and s["m_min"] <= monetary <= s["m_max"]
        )
        if since_first < 30:
            stage = "new"
        elif since_last < 90:
            stage = "active"
        elif since_last < 365:
            stage = "at risk"
        else:
            stage = "lapsed"
        out.add(
            (
                customer_id,
                value,
                (value / count).quantize(CENT, ROUND_HALF_UP),
                sum(1 for a in ago if a < 30),
                sum(1 for a in ago if a < 90),
                sum(1 for a in ago if a < 365),
                since_last,
                min(mine.dates),
                channel,
                category,
                recency,
                frequency,
                monetary,
                segment,
                stage,
            )
        )
    return out


def new_orders_index() -> dict[int, CustomerOrders]:
    return defaultdict(CustomerOrders)
