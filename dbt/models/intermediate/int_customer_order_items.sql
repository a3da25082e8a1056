{{ config(materialized='view') }}

{#- Every line item with the customer who bought it: stg_order_items of orders with a
    `user_id`, and the items of guest in-store orders matched to a customer by email
    (int_guest_order_owners). What the marts count as a customer's purchases. -#}

with guest_orders as (
    select order_id, customer_id, ordered_at, is_deleted, items
    from {{ ref('int_guest_order_owners') }}
    where attribution = 'email'
),

guest_line_items as (
    select
        order_id,
        customer_id,
        ordered_at,
        is_deleted,
        {{ unnest_array_with_index('items', 'item', 'line_number') }}
    from guest_orders
)

select
    order_id, line_number, customer_id, product_id, channel, product_name, category,
    price, quantity, amount, is_deleted, ordered_at,
    'user_id' as attributed_by
from {{ ref('stg_order_items') }}
where customer_id is not null

union all

select
    order_id,
    line_number,
    customer_id,
    item.product_id as product_id,
    'Instore' as channel,
    item.product_name as product_name,
    item.category as category,
    item.price as price,
    item.quantity as quantity,
    item.price * item.quantity as amount,
    is_deleted,
    ordered_at,
    'email' as attributed_by
from guest_line_items
