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
    document key). No age here: it depends on the day the row is read (see customer_details). -#}

with
{% if is_incremental() %}
touched as (
    {{ touched_customers(inputs) }}
),
{% endif %}

users as (
    select *
    from {{ ref('stg_users') }}
    where not is_deleted
        and customer_id is not null
        {% if is_incremental() -%}
        and customer_id in (select customer_id from touched)
        {%- endif %}
),

customers as (
    select *
    from users
    qualify row_number() over (
        partition by customer_id order by _cluster_time desc, document_key desc
    ) = 1
),

marks as (
    {{ customer_batch_marks(inputs, 'customers', with_source_times=true) }}
),

final as (
    select
        customers.customer_id,
        customers.document_key,
        customers.first_name,
        customers.last_name,
        customers.email,
        customers.gender,
        customers.dob,
        customers.street,
        customers.city,
        customers.postcode,
        customers.country,
        customers.created_at,
        customers.updated_at,
        marks._users_source_at,
        marks._users_batch_id
    from customers
    inner join marks on marks.customer_id = customers.customer_id
)

{{ select_with_tombstones('final', 'touched') }}
