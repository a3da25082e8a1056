{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='email_id',
        key_hash='_email_hash',
        tombstones=false,
    )
}}

{#- One row per email_id, merging all its records (which may arrive out of order): send time,
    first open, first click and unsubscribe (earliest `updated_at` of a record with that flag
    true), and the latest unsubscribe (a recipient may follow the link again after granting
    consent anew: each is a statement, customer_consent). Every
    column is a min/max/union over the records, so merging the previous row with new records
    gives what a full build over all records gives. -#}

with source as (
    select *, {{ kafka_value_fields('marketing_emails') }} as _value_fields
    from {{ source('raw', 'marketing_emails') }}
    where batch_id > {{ batch_watermark() }}
),

typed as (
    select
        -- ids
        {{ trimmed_text(json_text(kafka_value_field('marketing_emails', '$.email_id'), '$')) }} as email_id,
        {{ json_integer(kafka_value_field('marketing_emails', '$.user_id'), '$') }} as customer_id,
        nullif({{ trimmed_text(json_text(kafka_value_field('marketing_emails', '$.recipient_email'), '$')) }}, '') as recipient_email,

        -- strings
        {{ json_text(kafka_value_field('marketing_emails', '$.campaign'), '$') }} as campaign,

        -- booleans
        coalesce({{ json_boolean(kafka_value_field('marketing_emails', '$.email_opened'), '$') }}, false) as is_opened,
        coalesce({{ json_boolean(kafka_value_field('marketing_emails', '$.email_clicked'), '$') }}, false) as is_clicked,
        coalesce({{ json_boolean(kafka_value_field('marketing_emails', '$.unsubscribed'), '$') }}, false) as is_unsubscribed,

        -- timestamps
        {{ json_timestamp(kafka_value_field('marketing_emails', '$.date'), '$') }} as sent_at,
        coalesce(
            {{ json_timestamp(kafka_value_field('marketing_emails', '$.updated_at'), '$') }},
            {{ json_timestamp(kafka_value_field('marketing_emails', '$.date'), '$') }}
        ) as updated_at,

        batch_id as _batch_id
    from source
    where {{ kafka_rejection_reason('marketing_emails') }} is null
),

new_emails as (
    select
        email_id,
        min(customer_id) as customer_id,
        {{ sorted_distinct_array_agg('customer_id') }} as _customer_ids,
        min(campaign) as campaign,
        min(recipient_email) as recipient_email,
        min(sent_at) as sent_at,
        min(case when is_opened then updated_at end) as first_opened_at,
        min(case when is_clicked then updated_at end) as first_clicked_at,
        min(case when is_unsubscribed then updated_at end) as unsubscribed_at,
        max(case when is_unsubscribed then updated_at end) as last_unsubscribed_at,
        max(updated_at) as last_updated_at,
        count(*) as records,
        max(_batch_id) as _batch_id
    from typed
    group by email_id
),

{% if is_incremental() %}
emails as (
    select
        email_id,
        min(customer_id) as customer_id,
        {{ sorted_distinct_array_union_agg('_customer_ids') }} as _customer_ids,
        min(campaign) as campaign,
        min(recipient_email) as recipient_email,
        min(sent_at) as sent_at,
        min(first_opened_at) as first_opened_at,
        min(first_clicked_at) as first_clicked_at,
        min(unsubscribed_at) as unsubscribed_at,
        max(last_unsubscribed_at) as last_unsubscribed_at,
        max(last_updated_at) as last_updated_at,
        cast(sum(records) as {{ dbt.type_bigint() }}) as records,
        max(_batch_id) as _batch_id
    from (
        select * from new_emails
        union all
        select
            email_id, customer_id, _customer_ids, campaign, recipient_email, sent_at, first_opened_at,
            first_clicked_at, unsubscribed_at, last_unsubscribed_at, last_updated_at, records, _batch_id
        from {{ rows_with_keys(this, 'email_id', 'select email_id from new_emails', key_hash='_email_hash') }} as stored
    ) as records_so_far
    group by email_id
)
{% else %}
emails as (
    select * from new_emails
)
{% endif %}

{#- `_email_hash`: hash_of_key(email_id), so a build finds the stored rows of the emails it merges
    (and replaces) by scanning one 16-byte column instead of every stored email_id. -#}
select *, {{ hash_of_key('email_id') }} as _email_hash
from emails
