{#- Select of one row per line item of the orders in `orders_relation` (columns order_id,
    channel, customer_id, ordered_at, is_deleted, items, and `extra_columns`): the item's
    fields as columns, its 1-based position in the order as line_number, amount = price x
    quantity. stg_order_items applies it to every order, int_customer_order_items to the
    orders a build touches. -#}
{% macro order_line_items(orders_relation, extra_columns=[]) -%}
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
    {%- for column in extra_columns %},
    {{ column }}
    {%- endfor %}
from (
    select *, {{ customer360.unnest_array_with_index('items', 'item', 'line_number') }}
    from {{ orders_relation }}
) as line_items
{%- endmacro %}
