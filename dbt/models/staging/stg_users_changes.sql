{{
    config(
        materialized='incremental',
        incremental_strategy='append',
    )
}}

{#- Append-only: one row per valid change event of a MongoDB `users` document, typed; a
    delete carries no document (its columns are null). stg_users computes each document's
    current state from these rows. -#}

with source as (
    select *
    from {{ source('raw', 'users') }}
    where batch_id > {{ batch_watermark() }}
),

typed as (
    select
        -- ids
        document_key,
        {{ json_integer('document', '$.id') }} as customer_id,

        -- strings
        operation,
        {{ json_text('document', '$.first_name') }} as first_name,
        {{ json_text('document', '$.last_name') }} as last_name,
        {{ json_text('document', '$.email') }} as email,
        {{ json_text('document', '$.gender') }} as gender,
        {{ json_text('document', '$.address.street') }} as street,
        {{ json_text('document', '$.address.city') }} as city,
        {{ json_text('document', '$.address.postcode') }} as postcode,
        {{ json_text('document', '$.address.country') }} as country,
        {{ json_text('document', '$.consent.email.status') }} as email_consent_status,

        -- dates and timestamps
        {{ json_date('document', '$.dob') }} as dob,
        {{ json_timestamp('document', '$.created_at') }} as created_at,
        {{ json_timestamp('document', '$.updated_at') }} as updated_at,
        {{ json_timestamp('document', '$.consent.email.at') }} as email_consent_at,

        -- change position
        cluster_time,
        cluster_at,
        batch_id as _batch_id,
        -- a cheap deterministic tie-breaker between changes at the same position
        hash(document) as _document_hash
    from source
    where {{ mongo_change_is_staged('users') }}
)

select * from typed
