{{ config(materialized='view') }}

{#- A view: unnesting is done for the orders a query reads, so marts that filter on customer_id
    unnest only those customers' orders, and an order that changes or loses items needs no
    separate bookkeeping. Lines of deleted orders are kept, flagged `is_deleted`. -#}

with orders as (
    select order_id, channel, customer_id, ordered_at, is_deleted, items
    from {{ ref('stg_online_orders') }}
    union all
    select order_id, channel, customer_id, ordered_at, is_deleted, items
    from {{ ref('stg_instore_orders') }}
),

line_items as (
    select
        order_id,
        channel,
        customer_id,
        ordered_at,
        is_deleted,
        {{ unnest_array_with_index('items', 'item', 'line_number') }}
    from orders
)

select
    -- ids
    order_id,
    line_number,
    customer_id,
    item.product_id as product_id,

    -- strings
    channel,
    item.product_name as product_name,
    item.category as category,

    -- numbers
    item.price as price,
    item.quantity as quantity,
    item.price * item.quantity as amount,

    -- booleans
    is_deleted,

    -- timestamps
    ordered_at
from line_items
