{%- set inputs = ['users', 'online_orders', 'instore_orders'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- Orders, line items and amount per customer and channel, over orders that are not deleted.
    A channel without orders has no row. -#}


with
{% if is_incremental() %}
touched as (
    {{ touched_customers(inputs) }}
),
{% endif %}

customers as (
    select customer_id
    from {{ ref('int_customers') }}
    {% if is_incremental() -%}
    where customer_id in (select customer_id from touched)
    {%- endif %}
),

orders as (
    select customer_id, channel, order_id
    from {{ ref('stg_online_orders') }}
    where not is_deleted and customer_id in (select customer_id from customers)
    union all
    select customer_id, channel, order_id
    from {{ ref('stg_instore_orders') }}
    where not is_deleted and customer_id in (select customer_id from customers)
),

order_counts as (
    select customer_id, channel, count(*) as number_of_orders
    from orders
    group by customer_id, channel
),

line_item_totals as (
    select
        customer_id,
        channel,
        count(*) as number_of_items_purchased,
        sum(amount) as amount_spent
    from {{ ref('stg_order_items') }}
    where not is_deleted and customer_id in (select customer_id from customers)
    group by customer_id, channel
),

marks as (
    {{ customer_batch_marks(inputs, 'customers') }}
),

final as (
    select
        order_counts.customer_id,
        order_counts.channel,
        order_counts.number_of_orders,
        coalesce(line_item_totals.number_of_items_purchased, 0) as number_of_items_purchased,
        cast(
            round(
                cast(coalesce(line_item_totals.number_of_items_purchased, 0) as {{ dbt.type_float() }})
                / order_counts.number_of_orders,
                2
            ) as decimal(18, 2)
        ) as items_per_order,
        cast(coalesce(line_item_totals.amount_spent, 0) as {{ dbt.type_numeric() }}) as amount_spent,
        marks._users_batch_id,
        marks._online_orders_batch_id,
        marks._instore_orders_batch_id
    from order_counts
    inner join marks on marks.customer_id = order_counts.customer_id
    left join line_item_totals
        on line_item_totals.customer_id = order_counts.customer_id
        and line_item_totals.channel = order_counts.channel
)

{{ select_with_tombstones('final', 'touched') }}
