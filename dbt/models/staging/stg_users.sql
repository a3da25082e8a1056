{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='document_key',
    )
}}

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
        batch_id,
        document as document_text
    from source
    where {{ mongo_rejection_reason('users') }} is null
),

{{ mongo_current_state('typed', [
    'customer_id', 'first_name', 'last_name', 'email', 'gender',
    'street', 'city', 'postcode', 'country', 'dob', 'created_at', 'updated_at',
    'email_consent_status', 'email_consent_at',
]) }}

select * from current_state
