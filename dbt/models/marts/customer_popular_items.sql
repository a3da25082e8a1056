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

{#- How often each customer bought each product (line items of orders that are not deleted,
    both channels), by upper-case product name. -#}


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
        upper(product_name) as product_name,
        count(*) as purchases,
        max(ordered_at) as last_purchased_at
    from {{ ref('int_customer_order_items') }}
    where not is_deleted
        and product_name is not null
        and customer_id in (select customer_id from customers)
    group by customer_id, upper(product_name)
),

marks as (
    select customer_id, _users_batch_id, _online_orders_batch_id, _instore_orders_batch_id, _guest_orders_batch_id
    from {{ ref('int_customer_marks') }}
    where customer_id in (select customer_id from customers)
),

final as (
    select
        purchases.customer_id,
        purchases.product_name,
        purchases.purchases,
        purchases.last_purchased_at,
        marks._users_batch_id,
        marks._online_orders_batch_id,
        marks._instore_orders_batch_id,
        marks._guest_orders_batch_id
    from purchases
    left join marks on marks.customer_id = purchases.customer_id
)

{{ select_with_tombstones('final', 'touched') }}
