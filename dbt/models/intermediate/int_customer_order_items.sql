{%- set inputs = ['online_orders', 'instore_orders', 'guest_orders'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key=['channel', 'order_id'],
        post_hook=watermark_hook(inputs),
    )
}}

{#- Every line item with the customer who bought it: the items of orders with a `user_id`, and
    of guest in-store orders matched to a customer by email (int_guest_order_owners). What the
    marts count as a customer's purchases. Lines of deleted orders are kept, flagged
    `is_deleted`.

    A table rather than a view over stg_order_items: the marts read the line items of the
    customers a micro-batch touched, and DuckDB does not push that filter below the unnesting of
    a view, so every order's items would be unnested for each mart on every batch (a cost that
    grows with the history: ~20 ms a mart at 7 M events). Incremental: each order changed since
    the watermarks, in its current state or in whom it was matched to, is rebuilt whole; an
    order with no attributed lines any more keeps none (its tombstone deletes them). -#}

with
{% if is_incremental() %}
touched as (
    select channel, order_id
    from {{ ref('stg_online_orders') }}
    where _batch_id > {{ model_watermark('online_orders') }}
    union
    select channel, order_id
    from {{ ref('stg_instore_orders') }}
    where _batch_id > {{ model_watermark('instore_orders') }}
    union
    select 'Instore' as channel, order_id
    from {{ ref('int_guest_order_owners') }}
    where {{ rows_since_watermark('guest_orders') }}
),
{% endif %}

{#- The touched orders (all of them on a full build). An online order changes only with its own
    row, so its batch id finds it without comparing order ids. -#}
touched_orders as (
    select order_id, channel, customer_id, ordered_at, is_sale, is_deleted, items, 'user_id' as attributed_by
    from {{ ref('stg_online_orders') }}
    where customer_id is not null
    {%- if is_incremental() %}
        and _batch_id > {{ model_watermark('online_orders') }}
    {%- endif %}
    union all
    select order_id, channel, customer_id, ordered_at, is_sale, is_deleted, items, 'user_id' as attributed_by
    from {{ ref('stg_instore_orders') }}
    where customer_id is not null
    {%- if is_incremental() %}
        and order_id in (select order_id from touched where channel = 'Instore')
    {%- endif %}
    union all
    select order_id, 'Instore' as channel, customer_id, ordered_at, is_sale, is_deleted, items, 'email' as attributed_by
    from {{ ref('int_guest_order_owners') }}
    where attribution = 'email'
    {%- if is_incremental() %}
        and order_id in (select order_id from touched where channel = 'Instore')
    {%- endif %}
),

final as (
    {{ order_line_items('touched_orders', extra_columns=['attributed_by', 'is_sale']) }}
)

{{ select_with_tombstones('final', 'touched', key='channel, order_id') }}
