{%- set inputs = ['users', 'online_orders', 'instore_orders'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- What each customer buys per product category (the category each order line carries, as
    written): line items, amount and when last, over orders that are not deleted, both
    channels. customer_traits picks the preferred category from these rows. -#}


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

purchases as (
    select
        customer_id,
        category,
        cast(count(*) as {{ dbt.type_bigint() }}) as line_items,
        cast(sum(amount) as {{ dbt.type_numeric() }}) as amount_spent,
        max(ordered_at) as last_purchased_at
    from {{ ref('stg_order_items') }}
    where not is_deleted
        and category is not null
        and customer_id in (select customer_id from customers)
    group by customer_id, category
),

marks as (
    {{ customer_batch_marks(inputs, 'customers') }}
),

final as (
    select
        purchases.customer_id,
        purchases.category,
        purchases.line_items,
        purchases.amount_spent,
        purchases.last_purchased_at,
        marks._users_batch_id,
        marks._online_orders_batch_id,
        marks._instore_orders_batch_id
    from purchases
    inner join marks on marks.customer_id = purchases.customer_id
)

{{ select_with_tombstones('final', 'touched') }}
