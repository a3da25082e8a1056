{{
    config(
        materialized='incremental',
        incremental_strategy='append',
    )
}}

{#- Append-only: one row per event_id, the first valid record landed for it (by batch,
    partition, offset); later duplicates of a known event_id are dropped. -#}

with source as (
    select *, {{ kafka_value_fields('weblogs') }} as _value_fields
    from {{ source('raw', 'weblogs') }}
    where batch_id > {{ batch_watermark() }}
),

typed as (
    select
        -- ids
        {{ trimmed_text(json_text(kafka_value_field('weblogs', '$.event_id'), '$')) }} as event_id,
        {{ json_integer(kafka_value_field('weblogs', '$.user_id'), '$') }} as customer_id,
        nullif({{ trimmed_text(json_text(kafka_value_field('weblogs', '$.anonymous_id'), '$')) }}, '') as anonymous_id,
        {{ json_text(kafka_value_field('weblogs', '$.session_id'), '$') }} as session_id,

        -- strings
        {{ json_text(kafka_value_field('weblogs', '$.page'), '$') }} as page,
        {{ json_text(kafka_value_field('weblogs', '$.action'), '$') }} as action,
        nullif({{ trimmed_text(json_text(kafka_value_field('weblogs', '$.error_message'), '$')) }}, '') as error_message,

        -- timestamps
        {{ json_timestamp(kafka_value_field('weblogs', '$.date'), '$') }} as event_at,
        "timestamp" as kafka_timestamp,

        -- landing position
        "partition" as kafka_partition,
        "offset" as kafka_offset,
        batch_id as _batch_id
    from source
    where {{ kafka_rejection_reason('weblogs') }} is null
),

first_records as (
    select *
    from typed
    qualify row_number() over (
        partition by event_id order by _batch_id, kafka_partition, kafka_offset
    ) = 1
),

{#- A duplicate of a stored event is found through `_event_hash` (a hash of event_id): the
    probe scans one 8-byte column of the stored events, joined against the few new hashes, instead
    of hashing every stored event_id string on every build; event_id equality then decides. The
    event_ids are read only for the rows whose hash matched (by rowid): selecting them beside the
    hash read every stored event_id string (6 M at 7.5 M events: 19 -> 10 ms, quiet). -#}
{% if is_incremental() -%}
stored_duplicates as (
    select known.event_id
    from {{ this }} as known
    where known.rowid in (
        select rowid from {{ this }} where _event_hash in (select hash(event_id) from first_records)
    )
),
{%- endif %}

new_events as (
    select
        first_records.*,
        hash(first_records.event_id) as _event_hash
    from first_records
    {% if is_incremental() -%}
    where not exists (
        select 1 from stored_duplicates where stored_duplicates.event_id = first_records.event_id
    )
    {%- endif %}
)

select * from new_events
