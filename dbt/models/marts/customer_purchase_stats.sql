{{ config(materialized='view') }}

{#- Orders, line items and amount per customer and channel, over orders that are not deleted;
    a channel without orders has no row. customer_360_base's per-channel columns as rows: a
    view, so the micro-batch keeps one table per customer up to date instead of two. Each
    customer_360_base row is read once and crossed with the channels, so a lookup of one
    customer is served from the table's index (see customer_activity). -#}

{%- set channels = [('Online', 'online'), ('Instore', 'instore')] %}

with channels as (
    {{ values_column(channels | map(attribute=0) | list, 'channel') }}
),

per_channel as (
    select
        base.customer_id,
        channels.channel,
        {%- for column in ['orders', 'items_purchased', 'amount_spent'] %}
        case channels.channel
            {%- for channel, prefix in channels %}
            when {{ sql_string(channel) }} then base.{{ prefix }}_{{ column }}
            {%- endfor %}
        end as {{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ ref('customer_360_base') }} as base
    cross join channels
)

select
    customer_id,
    channel,
    orders as number_of_orders,
    items_purchased as number_of_items_purchased,
    -- items / orders rounded half up to cents, exactly: floor((items / orders) * 100 + 1/2)
    -- as one division of integers (a float quotient first would round 7 / 40 = 0.175 down).
    cast(floor((200 * items_purchased + orders) / (2.0 * orders)) / 100 as decimal(18, 2))
        as items_per_order,
    amount_spent
from per_channel
where orders > 0
