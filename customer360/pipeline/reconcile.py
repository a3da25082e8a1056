"""Nightly reconciliation: rebuild the marts from raw with a full refresh and compare.

The incremental models must equal what a full rebuild gives. The raw schema is copied into a
scratch DuckDB file under C360_HOME, dbt builds everything there with `--full-refresh`, and every
mart is compared row by row (`except all` both ways) with the live one. The trained
propensity models (schema `ml`) are copied too: the scores are computed from them. Runs in the
writer's process (the micro-batch's connection), so it never competes for the warehouse lock.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import duckdb

from customer360.pipeline.dbt_invoker import DbtBuildResult, DbtInvoker
from customer360.pipeline.microbatch import MicroBatch

log = logging.getLogger(__name__)

SCRATCH_NAME = "reconcile_scratch"
# What dbt builds from, copied into the scratch database: the landed data, and the trained
# purchase-propensity models (ml.propensity_coefficients) the scores are computed with.
INPUT_SCHEMAS = ("raw", "ml")


# Histories are kept, never rebuilt (dbt `full_refresh: false`): a rebuild from raw starts
# them again (every current member entered now), so they are compared by what they say now,
# the members, rather than row by row.
HISTORIES = {
    "audience_changes": "select audience, customer_id from marts.customer_audiences",
    "customer_audiences": "select audience, customer_id from marts.customer_audiences",
}

# How many differing customer ids a comparison names (the counts are always complete).
MAX_DIFFERING_KEYS = 20


@dataclass
class MartComparison:
    live_rows: int
    rebuilt_rows: int
    only_live: int
    only_rebuilt: int
    # Some customer_id values of rows found on one side only (at most MAX_DIFFERING_KEYS).
    differing_keys: list = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.only_live == 0 and self.only_rebuilt == 0


@dataclass
class ReconcileResult:
    marts: dict[str, MartComparison] = field(default_factory=dict)
    dbt: DbtBuildResult | None = None
    seconds: float = 0.0

    @property
    def matches(self) -> bool:
        return bool(self.dbt and self.dbt.success) and all(c.equal for c in self.marts.values())

    def summary_lines(self) -> list[str]:
        lines = [
            f"{name:<28} live {c.live_rows:>8}  rebuilt {c.rebuilt_rows:>8}  "
            f"only live {c.only_live:>6}  only rebuilt {c.only_rebuilt:>6}"
            + ("" if c.equal else f"  DIFFERENT, e.g. customers {c.differing_keys}")
            for name, c in self.marts.items()
        ]
        if self.dbt is not None and not self.dbt.success:
            lines += [
                "full-refresh build failed:",
                *(self.dbt.failures or [self.dbt.error or "no detail"]),
            ]
        return lines


def reconcile(batch: MicroBatch) -> ReconcileResult:
    started = time.monotonic()
    settings = batch.settings
    work = (settings.home / "reconcile").resolve()
    work.mkdir(parents=True, exist_ok=True)
    scratch = work / f"{SCRATCH_NAME}.duckdb"
    for stale in work.glob(f"{SCRATCH_NAME}.duckdb*"):
        stale.unlink()
    con = batch.con
    input_tables = con.execute(
        "select table_schema, table_name from information_schema.tables "
        f"where table_schema in {INPUT_SCHEMAS} and table_catalog = current_database()"
    ).fetchall()
    con.execute(f"attach '{scratch}' as {SCRATCH_NAME}")
    try:
        for schema in sorted({schema for schema, _ in input_tables}):
            con.execute(f"create schema {SCRATCH_NAME}.{schema}")
        for schema, table in input_tables:
            con.execute(
                f"create table {SCRATCH_NAME}.{schema}.{table} as select * from {schema}.{table}"
            )
    finally:
        con.execute(f"detach {SCRATCH_NAME}")

    # Its own target dir: the manifest names the database (the file's stem).
    invoker = DbtInvoker(settings.with_overrides(warehouse=scratch, home=work))
    result = ReconcileResult(dbt=invoker.build(extra=["--full-refresh"]))
    if result.dbt.success:
        # dbt-duckdb keeps the scratch file open in this process, so it cannot be attached to
        # the live connection; a plain connect shares dbt's instance, and the two sides are
        # compared as Arrow tables in an in-memory database.
        rebuilt_con = duckdb.connect(str(scratch))
        compare = duckdb.connect()
        try:
            marts = [
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_schema = "
                    "'marts' and table_catalog = current_database() order by 1"
                ).fetchall()
            ]
            for mart in marts:
                select = HISTORIES.get(mart, f"select * from marts.{mart}")
                compare.register("live", con.sql(select).to_arrow_table())
                compare.register("rebuilt", rebuilt_con.sql(select).to_arrow_table())

                def count(sql: str) -> int:
                    return compare.execute(f"select count(*) from ({sql})").fetchall()[0][0]

                only_live = "select * from live except all select * from rebuilt"
                only_rebuilt = "select * from rebuilt except all select * from live"
                comparison = MartComparison(
                    live_rows=count("select * from live"),
                    rebuilt_rows=count("select * from rebuilt"),
                    only_live=count(only_live),
                    only_rebuilt=count(only_rebuilt),
                )
                if not comparison.equal:
                    comparison.differing_keys = [
                        row[0]
                        for row in compare.execute(
                            f"select distinct customer_id from ({only_live} union all "
                            f"{only_rebuilt}) order by 1 limit {MAX_DIFFERING_KEYS}"
                        ).fetchall()
                    ]
                result.marts[mart] = comparison
                compare.unregister("live")
                compare.unregister("rebuilt")
        finally:
            compare.close()
            rebuilt_con.close()
    result.seconds = time.monotonic() - started
    return result
