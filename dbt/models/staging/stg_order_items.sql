{{ config(materialized='view') }}

{#- Every line item of every order, the customer's or not. A view: an order that changes or
    loses items needs no bookkeeping. Lines of deleted orders are kept, flagged `is_deleted`.
    The marts read int_customer_order_items instead: DuckDB does not push a filter on
    customer_id below this view's unnesting. -#}

with orders as (
    select order_id, channel, customer_id, ordered_at, is_deleted, items
    from {{ ref('stg_online_orders') }}
    union all
    select order_id, channel, customer_id, ordered_at, is_deleted, items
    from {{ ref('stg_instore_orders') }}
)

{{ order_line_items('orders') }}
