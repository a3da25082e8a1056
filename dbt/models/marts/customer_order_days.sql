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

{#- How many sales (orders not deleted and not cancelled or returned: stg_online_orders.is_sale;
    both channels, guest sales matched by email included) each customer made on each day (UTC): the
    stored facts behind the day-relative traits of customer_traits (orders in the last 30 / 90
    / 365 days, first and last order date), which that view derives on the day it is read.
    Dates, not "days ago", are stored, so a row stays true as time passes. -#}


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
    select customer_id, ordered_at
    from {{ ref('stg_online_orders') }}
    where not is_deleted and is_sale and customer_id in (select customer_id from customers)
    union all
    select customer_id, ordered_at
    from {{ ref('stg_instore_orders') }}
    where not is_deleted and is_sale and customer_id in (select customer_id from customers)
    union all
    -- guest sales matched to the customer by email (identity stitching)
    select customer_id, ordered_at
    from {{ ref('int_guest_order_owners') }}
    where attribution = 'email' and not is_deleted and is_sale and customer_id in (select customer_id from customers)
),

order_days as (
    select
        customer_id,
        cast(ordered_at as date) as order_date,
        cast(count(*) as {{ dbt.type_bigint() }}) as orders
    from orders
    group by customer_id, cast(ordered_at as date)
)

{{ select_with_tombstones('order_days', 'touched') }}
