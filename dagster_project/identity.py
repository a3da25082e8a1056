"""Identity stitching in the Dagster UI: what could not be tied to a customer, as metadata.

dbt's view `intermediate.int_unattributed_activity` counts the anonymous weblog events of
browsers nobody has logged in with yet and the guest in-store orders whose email matches no
customer, or two (dbt/README.md, "Identity stitching"). Each micro-batch that rebuilt the
stitching models reports those counts on the view's asset, so the UI shows, batch by batch, how
much activity is waiting for a login or an address to be tied to a customer.
"""

from __future__ import annotations

import duckdb
from dagster import MetadataValue

UNATTRIBUTED_VIEW = "int_unattributed_activity"
UNATTRIBUTED_SQL = f"select kind, records, identifiers from intermediate.{UNATTRIBUTED_VIEW}"
# Every kind the view can report, shown as 0 when it has no row.
KINDS = ("anonymous_weblog_events", "guest_orders_unmatched_email", "guest_orders_ambiguous_email")


def unattributed_metadata(con: duckdb.DuckDBPyConnection) -> dict[str, MetadataValue]:
    """The view's counts as asset metadata: `unattributed/<kind>` (records) and
    `unattributed/<kind>_ids` (distinct anonymous ids or addresses); empty if the view is
    missing (a warehouse older than identity stitching)."""
    try:
        rows = con.execute(UNATTRIBUTED_SQL).fetchall()
    except duckdb.CatalogException:
        return {}
    counts = {kind: (records, ids) for kind, records, ids in rows}
    metadata: dict[str, MetadataValue] = {}
    for kind in KINDS:
        records, ids = counts.get(kind, (0, 0))
        metadata[f"unattributed/{kind}"] = MetadataValue.int(int(records))
        metadata[f"unattributed/{kind}_ids"] = MetadataValue.int(int(ids))
    return metadata
