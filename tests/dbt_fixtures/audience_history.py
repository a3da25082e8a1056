"""A long audience history without hundreds of builds: entries appended to a built warehouse's
marts.audience_changes as the model appends them (the next sequences), one a minute."""

from __future__ import annotations

from pathlib import Path

import duckdb


def append_minutely_entries(
    warehouse: Path, audience: str, count: int, first_customer: int
) -> None:
    """`count` customers from `first_customer` on enter `audience`, one per UTC minute after
    the history's last change, so the history gains `count` minutes with changes."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            """
            insert into marts.audience_changes (sequence, audience, customer_id, change, changed_at)
            select last.sequence + i, ?, ? + i - 1, 'entered',
                date_trunc('minute', last.changed_at) + i * interval 1 minute
            from range(1, ? + 1) as steps(i),
                (select max(sequence) as sequence, max(changed_at) as changed_at
                 from marts.audience_changes) as last
            """,
            [audience, first_customer, count],
        )
