"""How fresh the published serving copy is, over all sources and per source, as the soak samples it.

`data_as_of` (serving_publication) is the greatest source time the copy reflects over every
source, so during a Kafka outage it keeps moving with the MongoDB changes still landing: the
outage does not show. Per source, the newest event time the copy reflects does: the newest
website visit (weblogs), email sent, opened or clicked (marketing_emails), online and in-store
order (their `date`), and users document (its `updated_at`, the `customer_id` identifier's last
sighting in customer_identities). These are the documents' own times, written by the generator
as it produces them, so a source's freshness is now minus its newest event that readers see; a
source whose events come seconds apart is that much older between two of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SOURCE_TIMES_SQL = """
select
    (select max(data_as_of) from serving_publication) as data_as_of,
    (select max(last_seen_at) from customer_identities where identifier_type = 'customer_id')
        as users,
    max(last_online_order_at) as online_orders,
    max(last_instore_order_at) as instore_orders,
    max(last_website_visit_at) as weblogs,
    max(greatest(last_email_sent_at, last_email_opened_at, last_email_clicked_at))
        as marketing_emails
from customer_360_base
"""
SOURCES = ("users", "online_orders", "instore_orders", "weblogs", "marketing_emails")


@dataclass
class Staleness:
    """Seconds between a sample and the newest source time the copy reflected then."""

    at: float  # when sampled (time.time())
    overall: float | None  # now minus data_as_of
    by_source: dict[str, float] = field(default_factory=dict)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.replace(tzinfo=UTC).timestamp()


def sample_serving(path: Path, now: float) -> Staleness | None:
    """The serving copy's staleness at `now`, or None when it cannot be read (not published
    yet, or replaced while opening)."""
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except Exception:  # noqa: BLE001 - not published yet, or being replaced
        return None
    try:
        row = con.execute(SOURCE_TIMES_SQL).fetchone()
    except Exception:  # noqa: BLE001 - a layout without these columns: nothing to say
        return None
    finally:
        con.close()
    times = dict(zip(("data_as_of", *SOURCES), (_epoch(v) for v in row), strict=True))
    overall = times.pop("data_as_of")
    return Staleness(
        at=now,
        overall=None if overall is None else now - overall,
        by_source={s: now - t for s, t in times.items() if t is not None},
    )


def worst(samples: Iterable[Staleness], start: float, end: float) -> Staleness | None:
    """The worst staleness sampled in [start, end] (`at`: its end), overall and per source
    (each its own maximum, not necessarily at the same moment); None without a sample there."""
    seen = [s for s in samples if start <= s.at <= end]
    if not seen:
        return None
    overall = [s.overall for s in seen if s.overall is not None]
    return Staleness(
        at=end,
        overall=max(overall) if overall else None,
        by_source=worst_by_source(s.by_source for s in seen),
    )


def worst_by_source(by_sources: Iterable[dict[str, float]]) -> dict[str, float]:
    """Each source's maximum over `by_sources`."""
    out: dict[str, float] = {}
    for by_source in by_sources:
        for source, seconds in by_source.items():
            out[source] = max(seconds, out.get(source, seconds))
    return out


def by_source_text(by_source: dict[str, float]) -> str:
    """`weblogs 37.1, marketing_emails 35.0, ...`: the stalest source first."""
    ranked = sorted(by_source.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{source} {seconds:.1f}" for source, seconds in ranked)
