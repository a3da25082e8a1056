"""DDL of the warehouse's `raw` schema: the contract between the extractors and dbt.

Landing tables are append-only and schema-agnostic: the record is kept as received (text) and
parsing into columns is dbt's job, so a new field in a source never breaks ingestion.

Mongo tables (`users`, `online_orders`, `instore_orders`):
- `operation`: snapshot | insert | update | replace | delete
- `document_key`: the document's `_id` as text (ObjectId hex, or the value's JSON otherwise)
- `cluster_time`: MongoDB cluster time as one sortable number, (seconds << 32) + increment.
  Snapshot rows carry the cluster time at which their change stream was opened, so every stream
  event for the same document sorts after them. The current state of a document is its row with
  the greatest (cluster_time, batch_id).
- `cluster_at`: the seconds part of `cluster_time` as a UTC timestamp, for freshness.
- `document`: the full document as relaxed extended JSON (dates as {"$date": "...Z"}, ObjectIds
  as {"$oid": "..."}), null for a delete, and for an update whose document was deleted before
  the stream looked it up (`updateLookup` finds none; the delete follows, and staging skips the
  update).

Kafka tables (`weblogs`, `marketing_emails`): `topic`, `partition`, `offset`, `key`,
`timestamp` (the record's Kafka timestamp, UTC) and `value` (the message text). Records that are
not a JSON object or lack a required field go to `raw.quarantine` instead, with the reason; so
do positions the extractor could not read on from (a quarantine row with the partition and
offset, no value): offsets deleted by retention, a stored offset beyond the partition's end, the
offsets of a topic recreated under its name, a partition the broker truncated and wrote again
(its log holds other records at offsets already landed: they land too). (topic, partition,
offset) is not unique across batches: those restart at the low watermark, and a record read
again lands again.

Optional fields read by dbt (absent in older records, which mean what they always did): a users
document's `consent.email.status` ('granted' | 'withdrawn') and `consent.email.at` (email
marketing consent; absent = unknown), a marketing email record's `"unsubscribed": true` (the
recipient unsubscribed from that email, at its `updated_at`; any other value is no unsubscribe).
They never quarantine a record.

Every landing row has `batch_id` (increasing across all sources: the dbt incremental watermark)
and `landed_at` (UTC).
"""

from __future__ import annotations

MONGO_TABLE_COLUMNS = """
    batch_id bigint not null,
    landed_at timestamp not null,
    operation varchar not null,
    document_key varchar not null,
    cluster_time bigint not null,
    cluster_at timestamp not null,
    document varchar
"""

KAFKA_TABLE_COLUMNS = """
    batch_id bigint not null,
    landed_at timestamp not null,
    topic varchar not null,
    "partition" integer not null,
    "offset" bigint not null,
    "key" varchar,
    "timestamp" timestamp,
    "value" varchar not null
"""

RAW_SCHEMA_DDL = f"""
create schema if not exists raw;
create table if not exists raw.users ({MONGO_TABLE_COLUMNS});
create table if not exists raw.online_orders ({MONGO_TABLE_COLUMNS});
create table if not exists raw.instore_orders ({MONGO_TABLE_COLUMNS});
create table if not exists raw.weblogs ({KAFKA_TABLE_COLUMNS});
create table if not exists raw.marketing_emails ({KAFKA_TABLE_COLUMNS});

-- Records that could not be landed as data, with why; nothing is dropped without a row here.
create table if not exists raw.quarantine (
    batch_id bigint not null,
    quarantined_at timestamp not null,
    source varchar not null,
    topic varchar,
    "partition" integer,
    "offset" bigint,
    "key" varchar,
    "value" blob,
    reason varchar not null
);

-- One row per micro-batch that landed anything (or moved a position).
create table if not exists raw._batches (
    batch_id bigint primary key,
    source varchar not null,
    started_at timestamp not null,
    finished_at timestamp not null,
    records bigint not null,
    quarantined bigint not null,
    bytes bigint not null,
    position_before varchar,
    position_after varchar
);

-- Kafka positions: the next offset to read per partition, committed with the rows, the id
-- of the topic they are offsets in (a topic recreated under its name has a new one; null: not
-- known, stored before the column existed: the current topic's id is adopted), and the leader
-- epoch of the last record read (Kafka's KIP-320: a consumer given it finds a log the broker
-- truncated and wrote again, instead of reading on at an offset that now holds later records).
create table if not exists raw._kafka_offsets (
    topic varchar not null,
    "partition" integer not null,
    next_offset bigint not null,
    batch_id bigint not null,
    updated_at timestamp not null,
    topic_id varchar,
    leader_epoch integer,
    primary key (topic, "partition")
);
-- A warehouse created before topic ids, or leader epochs, were kept gains the column (null in
-- its rows: nothing to check a truncation against until the next record is read).
alter table raw._kafka_offsets add column if not exists topic_id varchar;
alter table raw._kafka_offsets add column if not exists leader_epoch integer;

-- Mongo positions: the change stream resume token per collection, committed with the rows.
-- While the initial copy runs (`snapshot_done` false) the copy goes on, batch by batch in `_id`
-- order, after `snapshot_after_id`; the stream is followed from `resume_token` once it is done.
create table if not exists raw._mongo_positions (
    collection varchar primary key,
    resume_token varchar not null,
    stream_start_cluster_time bigint not null,
    snapshot_done boolean not null,
    snapshot_after_id varchar,
    batch_id bigint not null,
    updated_at timestamp not null
);

-- Every time a collection had to be copied again because its change stream could not resume.
create table if not exists raw._resnapshots (
    collection varchar not null,
    happened_at timestamp not null,
    reason varchar not null
);
"""
