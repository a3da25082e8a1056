{{ config(materialized='view') }}

{#- Orders, line items and amount per customer and channel, over orders that are not deleted;
    a channel without orders has no row. customer_360_base's per-channel columns as rows: a
    view, so the micro-batch keeps one table per customer up to date instead of two. -#}

{% for channel, prefix in [('Online', 'online'), ('Instore', 'instore')] %}
select
    customer_id,
    '{{ channel }}' as channel,
    {{ prefix }}_orders as number_of_orders,
    {{ prefix }}_items_purchased as number_of_items_purchased,
    -- items / orders rounded half up to cents, exactly: floor((items / orders) * 100 + 1/2)
    -- as one division of integers (a float quotient first would round 7 / 40 = 0.175 down).
    cast(
        floor(
            (200 * {{ prefix }}_items_purchased + {{ prefix }}_orders) / (2.0 * {{ prefix }}_orders)
        ) / 100
        as decimal(18, 2)
    ) as items_per_order,
    {{ prefix }}_amount_spent as amount_spent
from {{ ref('customer_360_base') }}
where {{ prefix }}_orders > 0
{% if not loop.last %}union all{% endif %}
{% endfor %}
