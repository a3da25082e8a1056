"""The soak's checks: raw holds every produced record exactly once, bad ones are quarantined or
rejected with a reason, the marts equal a full refresh, the oracle and the serving copy.

Every check returns `Findings`: counts of lost, duplicated and mismatched things, with a few
examples of each so a failure says what to look at.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bson import json_util
from bson.json_util import RELAXED_JSON_OPTIONS

from customer360.chaos.oracle import (
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
    return found


def compare_marts(expected: dict[str, set[tuple]], actual: dict[str, set[tuple]], label: str):
    found = Findings()
    for mart, rows in expected.items():
        got = actual.get(mart, set())
        found.checked[f"{label}: {mart} rows"] = len(rows)
        missing, extra = rows - got, got - rows
        # A row whose key is present with other values counts once as a mismatch, not as lost
        # + extra; `lost` is a key the oracle expects and the marts lack altogether.
        width = MART_KEYS[mart]
        missing_keys = Counter(r[:width] for r in missing)
        extra_keys = Counter(r[:width] for r in extra)
        for row in sorted(missing, key=str):
            if extra_keys.get(row[:width]):
                got_row = sorted((r for r in extra if r[:width] == row[:width]), key=str)[:1]
                found.add("mismatches", f"{label} {mart}: expected {row}, got {got_row}")
            else:
                found.add("lost", f"{label} {mart}: missing {row}")
        for row in sorted(extra, key=str):
            if not missing_keys.get(row[:width]):
                found.add("mismatches", f"{label} {mart}: unexpected {row}")
    return found


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
    customers = sorted(c for (c,) in expected["customers"])
    stats = {(r[0], r[1]): r for r in expected["customer_purchase_stats"]}
    activity = {(r[0], r[1]): r[2] for r in expected["customer_activity"]}
    if True:
        for customer_id in customers:
            status, profile = serving.get(f"/api/customers/{customer_id}")
            found.checked["API profiles"] += 1
            if status != 200:
                found.add("lost", f"API /api/customers/{customer_id}: {status}")
                continue
            got_stats = {
                (customer_id, s["channel"]): (
                    customer_id, s["channel"], s["number_of_orders"],
                    s["number_of_items_purchased"], Decimal(str(s["items_per_order"])),
                    Decimal(str(s["amount_spent"])),
                )
                for s in profile.get("purchase_stats", [])
            }  # fmt: skip
            want_stats = {k: v for k, v in stats.items() if k[0] == customer_id}
            if got_stats != want_stats:
                found.add("mismatches", f"API purchase stats of {customer_id}: {got_stats} "
                          f"!= {want_stats}")  # fmt: skip
            got_activity = {
                (customer_id, a["event"]): _api_time(a["last_at"])
                for a in profile.get("activity", [])
            }
            want_activity = {k: v for k, v in activity.items() if k[0] == customer_id}
            if got_activity != want_activity:
                found.add("mismatches", f"API activity of {customer_id}: {got_activity} "
                          f"!= {want_activity}")  # fmt: skip
        for customer_id in sorted(deleted_ids - set(customers))[:50]:
            found.checked["API deleted customers"] += 1
            if serving.get(f"/api/customers/{customer_id}")[0] != 404:
                found.add("mismatches", f"API still serves deleted customer {customer_id}")
    return found, (
        f"serving copy compared with the oracle; API profiles of {len(customers)} customers "
        "(purchase stats, activity) and deleted customers (404)"
    )


def _api_time(value):
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
