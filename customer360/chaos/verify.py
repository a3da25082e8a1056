"""The soak's checks: raw holds every produced record exactly once, bad ones are quarantined or
rejected with a reason, the marts equal a full refresh, the oracle and the serving copy.

Every check returns `Findings`: counts of lost, duplicated and mismatched things, with a few
examples of each so a failure says what to look at.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from bson import json_util
from bson.json_util import RELAXED_JSON_OPTIONS

from customer360.chaos.oracle import (
    DETAILS_COLUMNS,
    MART_KEYS,
    SourceData,
    expected_marts,
    first_weblogs,
    marts_rows,
)
from customer360.config import KAFKA_TOPICS, MONGO_COLLECTIONS, Settings
from extractors.mongo_source import document_key_text

EXAMPLES = 5
# Bad kinds the extractor quarantines (raw.quarantine) and those staging rejects.
QUARANTINED_KINDS = {"invalid_json", "missing_user_id", "oversized"}
REJECTED_KINDS = {"wrong_user_id_type", "wrong_date_type", "bad_mongo_document"}


@dataclass
class Findings:
    lost: int = 0
    duplicates: int = 0
    mismatches: int = 0
    checked: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, kind: str, what: str, count: int = 1) -> None:
        setattr(self, kind, getattr(self, kind) + count)
        if len(self.examples) < 40:
            self.examples.append(f"{kind}: {what}")

    def merge(self, other: Findings) -> None:
        self.lost += other.lost
        self.duplicates += other.duplicates
        self.mismatches += other.mismatches
        self.checked.update(other.checked)
        self.examples += other.examples[: 40 - len(self.examples)]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.mismatches)


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def check_raw(con, settings: Settings, data: SourceData, log: list[dict[str, Any]]) -> Findings:
    """Check 1: raw (and raw.quarantine) hold every Kafka record and Mongo change once."""
    found = Findings()
    # -- Kafka: by topic, partition and offset -----------------------------------------------
    landed: Counter = Counter()
    values: dict[tuple[str, int, int], str] = {}
    for source in KAFKA_TOPICS:
        for topic, partition, offset, value in con.execute(
            f'select topic, "partition", "offset", "value" from raw.{source}'
        ).fetchall():
            landed[(topic, partition, offset)] += 1
            values[(topic, partition, offset)] = value
    quarantine: dict[tuple[str, int, int], str] = {}
    for topic, partition, offset, reason in con.execute(
        'select topic, "partition", "offset", reason from raw.quarantine where topic is not null'
    ).fetchall():
        landed[(topic, partition, offset)] += 1
        quarantine[(topic, partition, offset)] = reason
    in_kafka: dict[tuple[str, int, int], bytes | None] = {}
    for messages in data.messages.values():
        for m in messages:
            in_kafka[(m.topic, m.partition, m.offset)] = m.value
    found.checked["kafka records"] = len(in_kafka)
    for position, value in in_kafka.items():
        count = landed.get(position, 0)
        if count == 0:
            found.add("lost", f"Kafka record {position} is in neither raw nor raw.quarantine")
        elif count > 1:
            found.add("duplicates", f"Kafka record {position} landed {count} times", count - 1)
        elif (
            position in values
            and value is not None
            and values[position] != value.decode("utf-8", errors="replace")
        ):
            found.add("mismatches", f"Kafka record {position}: raw value differs from Kafka's")
    for position in set(landed) - set(in_kafka):
        found.add("mismatches", f"raw holds {position}, which Kafka does not")

    # -- the producers' log: every delivered record is in Kafka with its ids -------------------
    rejected_positions = {
        p for (p,) in con.execute("select position from staging.stg_rejected_records").fetchall()
    }
    for entry in log:
        if "topic" not in entry or entry.get("source") not in KAFKA_TOPICS:
            continue
        if "error" in entry:
            found.add("lost", f"producer could not deliver {entry}")
            continue
        position = (entry["topic"], entry["partition"], entry["offset"])
        found.checked["logged Kafka records"] += 1
        value = in_kafka.get(position, b"__missing__")
        if value == b"__missing__":
            found.add("lost", f"logged record {position} is not in Kafka")
            continue
        record_id = entry.get("event_id") or entry.get("email_id")
        if record_id and record_id.encode() not in (value or b""):
            found.add("mismatches", f"{position} does not hold {record_id}")
        bad = entry.get("bad")
        if bad in QUARANTINED_KINDS:
            found.checked["bad records quarantined"] += 1
            if not quarantine.get(position):
                found.add("lost", f"bad record ({bad}) {position} is not in raw.quarantine")
        elif bad in REJECTED_KINDS:
            found.checked["bad records rejected by staging"] += 1
            if f"{position[0]}/{position[1]}@{position[2]}" not in rejected_positions:
                found.add("lost", f"bad record ({bad}) {position} is not in stg_rejected_records")

    # -- Mongo: the latest landed state of every document equals Mongo's -----------------------
    # A collection copied again (its change stream could not resume) lost the changes of the
    # gap by design (the copy holds their result): its documents' change counts say nothing.
    resnapshotted = {
        c for (c,) in con.execute("select collection from raw._resnapshots").fetchall()
    }
    for collection in MONGO_COLLECTIONS:
        rows = con.execute(
            f"""
            select document_key, operation, document from raw.{collection}
            qualify row_number() over (
                partition by document_key order by cluster_time desc, batch_id desc,
                operation = 'delete' desc) = 1
            """
        ).fetchall()
        landed_state = {k: json.loads(d) for k, op, d in rows if op != "delete" and d is not None}
        mongo_state = {
            document_key_text(doc["_id"]): json.loads(
                json_util.dumps(doc, json_options=RELAXED_JSON_OPTIONS)
            )
            for doc in data.documents[collection]
        }
        found.checked[f"{collection} documents"] = len(mongo_state)
        for key in mongo_state.keys() - landed_state.keys():
            found.add("lost", f"{collection} {key} is in Mongo, not in raw")
        for key in landed_state.keys() - mongo_state.keys():
            found.add("mismatches", f"{collection} {key} is deleted in Mongo, alive in raw")
        for key in mongo_state.keys() & landed_state.keys():
            if mongo_state[key] != landed_state[key]:
                found.add("mismatches", f"{collection} {key}: raw state differs from Mongo's")
        for key, cluster_time, count in con.execute(
            f"""
            select document_key, cluster_time, count(*) from raw.{collection}
            where operation <> 'snapshot' group by all having count(*) > 1
            """
        ).fetchall():
            what = f"{collection} {key} change @{cluster_time} x{count}"
            found.add("duplicates", what, count - 1)
        deleted_last = {k for k, op, _ in rows if op == "delete"}
        keys = {k for k, _, _ in rows}
        rejected_keys = {p.split("@", 1)[0] for p in rejected_positions if "/" not in p}
        for entry in log:
            if entry.get("source") != collection or "op" not in entry:
                continue
            key = str(entry["_id"])
            found.checked["logged Mongo writes"] += 1
            if key not in keys:
                found.add("lost", f"logged {entry['op']} of {collection} {key} is not in raw")
            elif entry["op"] == "delete" and key not in mongo_state and key not in deleted_last:
                found.add("lost", f"delete of {collection} {key} is not the last change in raw")
            if entry.get("bad") in REJECTED_KINDS and key not in rejected_keys:
                found.add("lost", f"bad {collection} document {key} not in stg_rejected_records")
        if collection in resnapshotted:
            found.checked[f"{collection}: change counts not checked (copied again)"] = 1
        else:
            check_change_counts(found, con, collection, log, keys)
    return found


def check_change_counts(found: Findings, con, collection: str, log, keys: set[str]) -> None:
    """Every logged write of a document made a change event that raw holds (the identity and
    consent rules read each users document's history from raw.users): fewer changes in raw
    than writes the log proves is a lost change, even when the document's latest state landed.
    A document with no row at all is counted by the caller."""
    changes = landed_changes(con, collection)
    for key, writes in logged_writes(log, collection).items():
        shortfall = required_changes(writes) - changes.get(key, 0)
        found.checked[f"{collection}: documents' change counts"] += 1
        if key in keys and shortfall > 0:
            ops = ", ".join(w["op"] for w in writes)
            found.add(
                "lost",
                f"{collection} {key}: {len(writes)} logged writes ({ops}), "
                f"{changes.get(key, 0)} changes in raw",
                shortfall,
            )


def landed_changes(con, collection: str) -> dict[str, int]:
    """How many change events (snapshot rows left out: a copy is no change) raw holds per
    document of `collection`."""
    return dict(
        con.execute(
            f"select document_key, count(*) from raw.{collection}"
            " where operation <> 'snapshot' group by document_key"
        ).fetchall()
    )


def logged_writes(log: list[dict[str, Any]], collection: str) -> dict[str, list[dict]]:
    """The logged writes of `collection`'s documents, per document key."""
    writes: dict[str, list[dict]] = {}
    for entry in log:
        if entry.get("source") == collection and "op" in entry:
            writes.setdefault(str(entry["_id"]), []).append(entry)
    return writes


def required_changes(writes: list[dict[str, Any]]) -> int:
    """How many change events a document's logged writes must have left in raw: one each (the
    stream starts once the change streams are open and logs a write once MongoDB acknowledged
    it; the faults write after that too). Except for a document both the stream and a fault
    (kind `chaos_...`) wrote, and deleted: churn_customers deletes customers the stream still
    updates (and may delete), and either's write may have come after the delete and matched
    nothing, so only the insert and one delete are certain."""
    by_fault = {str(w.get("kind", "")).startswith("chaos_") for w in writes}
    if by_fault == {True, False} and any(w["op"] == "delete" for w in writes):
        return sum(1 for w in writes if w["op"] == "insert") + 1
    return len(writes)


def compare_marts(
    expected: dict[str, Collection[tuple]], actual: dict[str, Collection[tuple]], label: str
) -> Findings:
    """The marts (`actual`, from oracle.marts_rows: every row as often as it is held) against
    the oracle's (`expected`). Compared as multisets: a key (MART_KEYS) held more often than
    expected counts each surplus row as a duplicate, whether the copies are identical or not."""
    found = Findings()
    for mart, rows in expected.items():
        want, got = Counter(rows), Counter(actual.get(mart, ()))
        found.checked[f"{label}: {mart} rows"] = want.total()
        width = MART_KEYS[mart]
        duplicated = count_duplicate_keys(found, want, got, width, f"{label} {mart}")
        missing, extra = want.keys() - got.keys(), got.keys() - want.keys()
        # A row whose key is present with other values counts once as a mismatch, not as lost
        # + extra; `lost` is a key the oracle expects and the marts lack altogether.
        missing_keys = {r[:width] for r in missing}
        extra_by_key = rows_by_key(extra, width)
        for row in sorted(missing, key=str):
            if row[:width] in extra_by_key:
                got_row = extra_by_key[row[:width]][:1]
                found.add("mismatches", f"{label} {mart}: expected {row}, got {got_row}")
            else:
                found.add("lost", f"{label} {mart}: missing {row}")
        for row in sorted(extra, key=str):
            # a second row of an expected key is already counted, as a duplicate
            if row[:width] not in missing_keys and row[:width] not in duplicated:
                found.add("mismatches", f"{label} {mart}: unexpected {row}")
    return found


def rows_by_key(rows, width: int) -> dict[tuple, list[tuple]]:
    """The rows (sorted) under their key, its first `width` columns."""
    grouped: dict[tuple, list[tuple]] = {}
    for row in sorted(rows, key=str):
        grouped.setdefault(row[:width], []).append(row)
    return grouped


def count_duplicate_keys(
    found: Findings, want: Counter, got: Counter, width: int, what: str
) -> set[tuple]:
    """Adds to `found.duplicates` every row of `got` beyond the number of rows `want` has for
    its key (at least one); returns the keys that had such rows."""
    wanted_keys: Counter = Counter()
    for row, count in want.items():
        wanted_keys[row[:width]] += count
    duplicated = set()
    for key, held in rows_by_key(got, width).items():
        count = sum(got[row] for row in held)
        surplus = count - max(1, wanted_keys[key])
        if surplus > 0:
            duplicated.add(key)
            found.add("duplicates", f"{what}: key {key} held {count} times: {held[:2]}", surplus)
    return duplicated


def check_oracle(con, data: SourceData) -> Findings:
    """Check 3: the marts equal the plain-Python oracle over the sources."""
    found = compare_marts(expected_marts(data), marts_rows(con), "oracle vs marts")
    undecidable = first_weblogs(data.messages["weblogs"])[1]
    found.checked["weblog event_ids the oracle cannot decide"] = len(undecidable)
    for what in undecidable:
        found.add("mismatches", f"the soak produced an undecidable duplicate: {what}")
    return found


def check_serving(
    settings: Settings, data: SourceData, serving, deleted_ids: set[int]
) -> tuple[Findings, str]:
    """Check 4: the published serving copy and the profile API say what the oracle says."""
    import duckdb

    expected = expected_marts(data)
    found = Findings()
    con = duckdb.connect(str(settings.serving_path), read_only=True)
    try:
        found.merge(compare_marts(expected, marts_rows(con, schema=""), "oracle vs serving copy"))
        # Audiences for email hold only customers the oracle says granted email consent.
        granted = {r[0] for r in expected["customer_consent"] if r[1] == "granted"}
        members = con.execute(
            "select m.audience, m.customer_id from customer_audiences m"
            " join audience_definitions d on d.audience = m.audience where d.channel = 'email'"
        ).fetchall()
        found.checked["oracle vs serving copy: email audience members"] = len(members)
        for audience, customer_id in members:
            if customer_id not in granted:
                found.add("mismatches", f"{audience} holds {customer_id} without email consent")
    finally:
        con.close()
    customers = sorted(row[0] for row in expected["customer_details"])
    details = {row[0]: row for row in expected["customer_details"]}
    stats, activity = (
        by_customer(expected["customer_purchase_stats"]),
        by_customer(expected["customer_activity"]),
    )
    for customer_id in customers:
        status, profile = serving.get(f"/api/customers/{customer_id}")
        found.checked["API profiles"] += 1
        if status != 200:
            found.add("lost", f"API /api/customers/{customer_id}: {status}")
            continue
        want = (details[customer_id], stats.get(customer_id, []), activity.get(customer_id, []))
        compare_api_profile(found, profile, *want)
    for customer_id in sorted(deleted_ids - set(customers))[:50]:
        found.checked["API deleted customers"] += 1
        if serving.get(f"/api/customers/{customer_id}")[0] != 404:
            found.add("mismatches", f"API still serves deleted customer {customer_id}")
    return found, (
        f"serving copy compared with the oracle; API profiles of {len(customers)} customers "
        "(details, purchase stats, activity) and deleted customers (404)"
    )


def by_customer(rows) -> dict[int, list[tuple]]:
    """A mart's rows, sorted, per customer (their first column)."""
    grouped: dict[int, list[tuple]] = {}
    for row in sorted(rows, key=str):
        grouped.setdefault(row[0], []).append(row)
    return grouped


def compare_api_profile(
    found: Findings, profile: dict[str, Any], details: tuple, stats: list, activity: list
) -> None:
    """One customer's API profile against the oracle's rows of customer_details,
    customer_purchase_stats and customer_activity. Compared as sorted lists, so an entry the API
    repeats is a difference, not hidden."""
    customer_id = details[0]
    got_details = [profile.get("details", {}).get(column) for column in DETAILS_COLUMNS]
    want_details = [_api_value(value) for value in details]
    if got_details != want_details:
        found.add("mismatches", f"API details of {customer_id}: {got_details} != {want_details}")
    got_stats = sorted(
        (
            customer_id, s["channel"], s["number_of_orders"], s["number_of_items_purchased"],
            Decimal(str(s["items_per_order"])), Decimal(str(s["amount_spent"])),
        )
        for s in profile.get("purchase_stats", [])
    )  # fmt: skip
    want_stats = sorted(stats)
    if got_stats != want_stats:
        found.add("mismatches", f"API purchase stats of {customer_id}: {got_stats} "
                  f"!= {want_stats}")  # fmt: skip
    got_activity = sorted(
        (customer_id, a["event"], _api_time(a["last_at"])) for a in profile.get("activity", [])
    )
    want_activity = sorted(activity)
    if got_activity != want_activity:
        found.add("mismatches", f"API activity of {customer_id}: {got_activity} "
                  f"!= {want_activity}")  # fmt: skip


def _api_value(value):
    """An oracle value as the API serves it (JSON): dates as ISO text."""
    return value.isoformat() if isinstance(value, date) else value


def _api_time(value):
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
