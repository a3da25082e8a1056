"""The live stream's event mix: which kinds of event, in what proportions, in what order.

Kinds follow the proportions of the seeded history (`STREAM_MIX`, events per customer-year)
through a smooth weighted round-robin, so over any window the mix is exact and even a rare kind
(a user deletion) turns up every ~1,000 events.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from customer360.generator import catalog, records


def _mean_session_pages(with_order: bool) -> float:
    rng = random.Random(0)
    return sum(len(records.plan_session(rng, with_order)) for _ in range(2_000)) / 2_000


MEAN_PAGES = _mean_session_pages(False)
MEAN_ORDER_PAGES = _mean_session_pages(True)
_yearly = records.YEARLY_PER_CUSTOMER
_store_city_share = sum(w for c, _, w in catalog.CITIES if c in records.STORE_CITIES) / sum(
    w for _, _, w in catalog.CITIES
)
# Events per customer-year by kind: the same model as `seed`, plus the changes a history does
# not show as records (profile updates, deletions, sign-ups).
STREAM_MIX: dict[str, float] = {
    "weblog": _yearly["sessions"] * MEAN_PAGES + _yearly["online_orders"] * MEAN_ORDER_PAGES,
    "email_sent": _yearly["emails"],
    "email_followup": _yearly["emails"]
    * records.MEAN_OPEN_RATE
    * (1 + records.MEAN_CLICK_GIVEN_OPEN + records.UNSUBSCRIBE_SHARE),
    "online_order": _yearly["online_orders"],
    "instore_order": _yearly["instore_orders"]
    * (_store_city_share + 0.15 * (1 - _store_city_share)),
    "new_customer": 0.5,
    "profile_update": 1.0,
    "user_delete": 0.1,
    "order_delete": 0.1,
    # A store or the support desk corrects an order: one more of its first item.
    "order_correction": 0.2,
}
# The kind standing for a bad record (its weight comes from the stream's `bad_share`).
BAD = "bad"


class SmoothWeightedRoundRobin:
    """Picks names in proportion to their weights, interleaved (nginx's smooth WRR).

    After n picks every name has been picked within one of n * weight / total times.
    """

    def __init__(self, weights: Mapping[str, float]):
        self.weights = {name: float(w) for name, w in weights.items() if w > 0}
        if not self.weights:
            raise ValueError("at least one weight must be positive")
        self.total = sum(self.weights.values())
        self.current = dict.fromkeys(self.weights, 0.0)

    def next(self) -> str:
        best = None
        for name, weight in self.weights.items():
            self.current[name] += weight
            if best is None or self.current[name] > self.current[best]:
                best = name
        self.current[best] -= self.total
        return best
