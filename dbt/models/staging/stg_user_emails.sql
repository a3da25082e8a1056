{{
    config(
        materialized='incremental',
        incremental_strategy='append',
    )
}}

{#- Every change of a `users` document with the email address it set, in the form addresses are
    compared in (trimmed, lower-case): the history that says which customer held an address at
    a given time (stg_users keeps only the current state). A delete ends the document's last
    address (`email_key` null). Append-only: raw users rows above max(_batch_id). -#}

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
        {{ normalized_email(json_text('document', '$.email')) }} as email_key,

        -- booleans
        operation = 'delete' as is_delete,

        -- timestamps
        cluster_at as changed_at,

        -- change position
        cluster_time,
        batch_id as _batch_id
    from source
    where {{ mongo_change_is_staged('users') }}
)

select * from typed
