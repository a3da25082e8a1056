{%- set inputs = ['instore_orders'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        post_hook=watermark_hook(inputs),
    )
}}

{#- Every address each in-store order ever carried as its `customer_email` (trimmed,
    lower-case), one row per (order, address), with the first landing batch that carried it:
    an order's address history, which its current state (stg_instore_orders) forgets when the
    till corrects the address or replaces it by a user_id. int_guest_order_owners reads it to
    recompute the customers who held an order's earlier addresses, and to find the orders to
    recompute when a users document takes or leaves one of them.

    Append-only: the pairs carried by order changes above the watermark (the greatest
    stg_instore_orders batch taken in, recorded by the post-hook) that are not stored yet. -#}

-- depends_on: {{ ref('int_customers') }}, {{ ref('stg_instore_orders') }}
-- (int_customers: its post-hook creates intermediate.dbt_watermarks on a first build, and two
-- models creating that table side by side conflict; stg_instore_orders: this post-hook reads it)
with changes as (
    select
        document_key as order_id,
        {{ normalized_email('customer_email') }} as email_key,
        _batch_id
    from {{ ref('stg_instore_orders_changes') }}
    where customer_email is not null
        and _batch_id > {{ model_watermark('instore_orders') }}
),

carried as (
    select order_id, email_key, min(_batch_id) as _batch_id
    from changes
    where email_key is not null
    group by order_id, email_key
)

select order_id, email_key, _batch_id
from carried
{%- if is_incremental() %}
where not exists (
    select 1
    from {{ this }} as stored
    where stored.order_id = carried.order_id and stored.email_key = carried.email_key
)
{%- endif %}
