"""customer_identities and the email -> customer rule as the chaos oracle expects them.

Independent of dbt's SQL: the rules of dbt/README.md ("Identity stitching") and
dbt/models/marts/customer_identities.yml, written again in plain Python.

Which address a users document held *when* is the history of its changes, which MongoDB's
current documents do not keep: the oracle reads it (each change's document and MongoDB's change
time) from `raw.users`, the landing that check 1 (`verify.check_raw`) proves holds every change
once, and applies the rules itself; it reads nothing dbt built. Without that history (a unit
test's hand-made sources) each current document stands for the one change that set it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

IDENTITY_COLUMNS = ("customer_id", "identifier_type", "identifier", "first_seen_at", "last_seen_at")
_NEVER = datetime.min
_ALWAYS = datetime.max
# What the `trimmed_text` macro trims: space, tab, line feed, vertical tab, form feed, return.
WHITESPACE = " \t\n\v\f\r"


@dataclass(frozen=True)
class UserChange:
    """One change of a users document as landed: what staging's stg_user_emails keeps."""

    document_key: str
    customer_id: int | None
    email_key: str | None  # the address it set, trimmed and lower-cased; None on a delete
    changed_at: datetime | None  # MongoDB's change time (seconds)
    cluster_time: int
    batch_id: int
    is_delete: bool
    # consent.email.status, trimmed and lower-cased, and the document's updated_at (customer
    # consent: a status without `at` holds from the change that set it).
    consent_status: str | None = None
    updated_at: datetime | None = None


def normalized_email(value: Any) -> str | None:
    """`normalized_email`: trimmed, lower-case, None when empty or absent."""
    from customer360.chaos.oracle import as_text

    text = as_text(value)
    if text is None:
        return None
    return text.strip(WHITESPACE).lower() or None


def user_change(
    document_key: str, operation: str, document: Any, cluster_time: int, changed_at, batch_id: int
) -> UserChange | None:
    """The change as stg_user_emails types it, or None when staging rejects the document."""
    from customer360.chaos.oracle import as_integer

    if operation == "delete":
        return UserChange(document_key, None, None, changed_at, cluster_time, batch_id, True)
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return None
    if not isinstance(document, dict) or as_integer(document.get("id")) is None:
        return None  # rejected (mongo_rejection_reason)
    from customer360.chaos.oracle import as_text, as_timestamp

    consent = document.get("consent")
    stated = consent.get("email") if isinstance(consent, dict) else None
    status = as_text(stated.get("status")) if isinstance(stated, dict) else None
    updated_at = document.get("updated_at")
    if isinstance(updated_at, dict):  # relaxed extended JSON: {"$date": "...Z"}
        updated_at = updated_at.get("$date")
    return UserChange(
        document_key, as_integer(document["id"]), normalized_email(document.get("email")),
        changed_at, cluster_time, batch_id, False,
        status.strip(WHITESPACE).lower() if status is not None else None, as_timestamp(updated_at),
    )  # fmt: skip


def consent_set_at(changes: list[UserChange]) -> dict[str, datetime | None]:
    """Per document: when its current consent status was set (customer_consent's time of a
    status stated without `at`): the updated_at (else MongoDB's change time) of the first of
    its latest changes that all carry that status (stg_users.email_consent_stated_at)."""
    by_document: dict[str, list[UserChange]] = defaultdict(list)
    for change in changes:
        if not change.is_delete:
            by_document[change.document_key].append(change)
    out = {}
    for key, document_changes in by_document.items():
        document_changes.sort(key=lambda c: (c.cluster_time, c.batch_id))
        start = document_changes[-1]
        for change in reversed(document_changes):
            if change.consent_status != start.consent_status:
                break
            first = change
        out[key] = first.updated_at or first.changed_at
    return out


def read_user_changes(con) -> list[UserChange]:
    """Every landed change of a users document (raw.users), typed as staging types it."""
    rows = con.execute(
        "select document_key, operation, document, cluster_time, cluster_at, batch_id"
        " from raw.users"
    ).fetchall()
    changes = [user_change(*row) for row in rows]
    return [c for c in changes if c is not None]


def changes_from_documents(users: list[dict[str, Any]]) -> list[UserChange]:
    """Without the landed history: each current document as the one change that set it."""
    from customer360.chaos.oracle import as_timestamp

    out = []
    for user in users:
        at = as_timestamp(user.get("updated_at")) or as_timestamp(user.get("created_at"))
        change = user_change(str(user.get("_id")), "snapshot", user, 0, at, 0)
        if change is not None:
            out.append(change)
    return out


@dataclass(frozen=True)
class AddressPeriod:
    customer_id: int
    valid_from: datetime
    valid_to: datetime
    backdated: bool = False  # a document's first address before its first change


def address_periods(changes: list[UserChange]) -> dict[str, list[AddressPeriod]]:
    """Who held each address when: a document's address holds from the change that set it
    until the document's next change; its first address also before (`backdated`), back to the
    end of the latest period in which another customer held it by a change that began before,
    and counts only where no change had set the address for anyone (int_guest_order_owners)."""
    by_document: dict[str, list[UserChange]] = defaultdict(list)
    for change in changes:
        by_document[change.document_key].append(change)
    periods: dict[str, list[AddressPeriod]] = defaultdict(list)
    for document_changes in by_document.values():
        document_changes.sort(key=lambda c: (c.cluster_time, c.batch_id, c.is_delete))
        for index, change in enumerate(document_changes):
            if change.email_key is None or change.customer_id is None:
                continue
            following = document_changes[index + 1] if index + 1 < len(document_changes) else None
            valid_to = _ALWAYS if following is None else following.changed_at
            periods[change.email_key].append(
                AddressPeriod(change.customer_id, change.changed_at, valid_to)
            )
            if index == 0:
                periods[change.email_key].append(
                    AddressPeriod(change.customer_id, _NEVER, change.changed_at, backdated=True)
                )
    return {key: _backdated_after_others(held) for key, held in periods.items()}


def _backdated_after_others(held: list[AddressPeriod]) -> list[AddressPeriod]:
    """An address's periods, each backdated one starting where the last period of another
    customer's that began before it ended (never later than its own end)."""
    out = []
    for period in held:
        if period.backdated:
            ends = [
                min(other.valid_to, period.valid_to)
                for other in held
                if not other.backdated
                and other.customer_id != period.customer_id
                and other.valid_from < period.valid_to
            ]
            period = replace(period, valid_from=max(ends, default=_NEVER))
        out.append(period)
    return out


def address_owner(email: Any, at: datetime, periods: dict[str, list[AddressPeriod]]) -> int | None:
    """The one customer who held the address (trimmed, case-insensitive) at `at`; None when
    nobody or several did (unmatched, ambiguous)."""
    key = normalized_email(email)
    if key is None:
        return None
    covering = [p for p in periods.get(key, ()) if p.valid_from <= at < p.valid_to]
    # Holders by a change first; a document's first address before it only if there are none.
    holders = {p.customer_id for p in covering if not p.backdated} or {
        p.customer_id for p in covering if p.backdated
    }
    return next(iter(holders)) if len(holders) == 1 else None


class Identities:
    """customer_identities being gathered: sightings of (customer, type, identifier)."""

    def __init__(self, customers: set[int]):
        self.customers = customers
        self.seen: dict[tuple[int, str, str], list[datetime | None]] = {}

    def sight(self, customer_id: int | None, kind: str, identifier: str | None, at) -> None:
        if customer_id not in self.customers or identifier is None:
            return
        span = self.seen.setdefault((customer_id, kind, identifier), [None, None])
        if at is not None:
            span[0] = at if span[0] is None else min(span[0], at)
            span[1] = at if span[1] is None else max(span[1], at)

    def rows(self) -> set[tuple]:
        return {(c, kind, identifier, first, last)
                for (c, kind, identifier), (first, last) in self.seen.items()}  # fmt: skip


def expected_identities(
    customers: dict[int, dict[str, Any]],
    changes: list[UserChange],
    guest_sales: list[tuple[int, str, datetime]],
    email_recipients: list[tuple[int, str, datetime]],
    logins: list[tuple[int, str, datetime]],
    stitched_events: list[tuple[int, str, datetime]],
) -> set[tuple]:
    """customer_identities' rows (columns as `IDENTITY_COLUMNS`), customers that exist only.

    `customers`: the users document of each customer; `guest_sales`: (customer, address key,
    ordered_at) of guest sales matched by email; `email_recipients`: (customer, recipient
    address key, sent_at); `logins`: (customer, anonymous_id, at); `stitched_events`:
    (customer, anonymous_id, at) of anonymous events attributed to the customer.
    """
    from customer360.chaos.oracle import as_timestamp

    found = Identities(set(customers))
    for customer_id, user in customers.items():
        for field in ("created_at", "updated_at"):
            found.sight(customer_id, "customer_id", str(customer_id), as_timestamp(user.get(field)))
    for change in changes:
        found.sight(change.customer_id, "email", change.email_key, change.changed_at)
    for customer_id, key, at in guest_sales + email_recipients:
        found.sight(customer_id, "email", key, at)
    for customer_id, device, at in logins + stitched_events:
        found.sight(customer_id, "anonymous_id", device, at)
    return found.rows()
