{%- set inputs = ['users'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- The customers that exist: one row per customer id of a users document that is not deleted.
    Should two live documents carry the same id, the one changed last wins (then the larger
    document key). A build recomputes the customers of the users documents that changed. No age
    here: it depends on the day the row is read (see customer_details). -#}

with
{% if is_incremental() %}
touched as (
    {{ touched_customers(inputs) }}
),
{% endif %}

live_documents as (
    select *
    from {{ ref('stg_users') }}
    where not is_deleted
        and customer_id is not null
        {% if is_incremental() -%}
        and customer_id in (select customer_id from touched)
        {%- endif %}
),

final as (
    select
        customer_id,
        document_key,
        first_name,
        last_name,
        email,
        gender,
        dob,
        street,
        city,
        postcode,
        country,
        created_at,
        updated_at
    from live_documents
    qualify row_number() over (
        partition by customer_id order by _cluster_time desc, document_key desc
    ) = 1
)

{{ select_with_tombstones('final', 'touched') }}
