{%- set inputs = ['users', 'online_orders', 'instore_orders', 'guest_orders'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- The touched customers are read from these too (incremental builds only). -#}
/* depends_on: {{ ref('stg_users') }} */
/* depends_on: {{ ref('stg_online_orders') }} */
/* depends_on: {{ ref('stg_instore_orders') }} */
/* depends_on: {{ ref('int_guest_order_owners') }} */

{#- What each customer buys per product category (the category each order line carries, as
    written): line items, amount and when last, over sales (orders not deleted, cancelled or
    returned: stg_online_orders.is_sale), both channels, guest sales matched by email included
    (int_customer_order_items). customer_traits picks the preferred category from these rows. -#}


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
        cast(sum(amount) as {{ money_type() }}) as amount_spent,
        max(ordered_at) as last_purchased_at
    from {{ ref('int_customer_order_items') }}
    where not is_deleted
        and is_sale
        and category is not null
        and customer_id in (select customer_id from customers)
    group by customer_id, category
)

{{ select_with_tombstones('purchases', 'touched') }}
