{%- set inputs = ['users', 'online_orders', 'instore_orders', 'weblogs', 'marketing_emails'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- One row per customer with everything the other marts know, except age (see customer_360).
    Favourite product: most purchases, then latest last_purchased_at, then product name A-Z.
    Latest error: latest last_at, then most occurrences, then error message A-Z, then page A-Z.
    as_of: the greatest source time reflected for the customer (see the yml). -#}


with
{% if is_incremental() %}
touched as (
    {{ touched_customers(inputs) }}
),
{% endif %}

customers as (
    select *
    from {{ ref('int_customers') }}
    {% if is_incremental() -%}
    where customer_id in (select customer_id from touched)
    {%- endif %}
),

purchases as (
    select
        customer_id,
        sum(case when channel = 'Online' then number_of_orders else 0 end) as online_orders,
        sum(case when channel = 'Online' then number_of_items_purchased else 0 end) as online_items_purchased,
        sum(case when channel = 'Online' then amount_spent else 0 end) as online_amount_spent,
        sum(case when channel = 'Instore' then number_of_orders else 0 end) as instore_orders,
        sum(case when channel = 'Instore' then number_of_items_purchased else 0 end) as instore_items_purchased,
        sum(case when channel = 'Instore' then amount_spent else 0 end) as instore_amount_spent,
        sum(number_of_orders) as total_orders,
        sum(number_of_items_purchased) as total_items_purchased,
        sum(amount_spent) as total_amount_spent
    from {{ ref('customer_purchase_stats') }}
    where customer_id in (select customer_id from customers)
    group by customer_id
),

favourite_products as (
    select customer_id, product_name, purchases, last_purchased_at
    from {{ ref('customer_popular_items') }}
    where customer_id in (select customer_id from customers)
    qualify row_number() over (
        partition by customer_id
        order by purchases desc, last_purchased_at desc nulls last, product_name asc
    ) = 1
),

activity as (
    select
        customer_id,
        max(case when event = 'Instore Order' then last_at end) as last_instore_order_at,
        max(case when event = 'Online Order' then last_at end) as last_online_order_at,
        max(case when event = 'Email Sent' then last_at end) as last_email_sent_at,
        max(case when event = 'Email Opened' then last_at end) as last_email_opened_at,
        max(case when event = 'Email Clicked' then last_at end) as last_email_clicked_at,
        max(case when event = 'Website Visit' then last_at end) as last_website_visit_at,
        max(case when event = 'Website Login' then last_at end) as last_website_login_at
    from {{ ref('customer_activity') }}
    where customer_id in (select customer_id from customers)
    group by customer_id
),

latest_errors as (
    select customer_id, error_message, page, last_at
    from {{ ref('customer_recent_errors') }}
    where customer_id in (select customer_id from customers)
    qualify row_number() over (
        partition by customer_id
        order by last_at desc nulls last, occurrences desc, error_message asc, page asc nulls last
    ) = 1
),

marks as (
    {{ customer_batch_marks(inputs, 'customers', with_source_times=true) }}
),

final as (
    select
        -- identity
        customers.customer_id,
        customers.first_name,
        customers.last_name,
        customers.email,
        customers.gender,
        customers.dob,
        customers.city,
        customers.country,

        -- orders, items and amount per channel and in total
        coalesce(purchases.online_orders, 0) as online_orders,
        coalesce(purchases.online_items_purchased, 0) as online_items_purchased,
        cast(coalesce(purchases.online_amount_spent, 0) as {{ dbt.type_numeric() }}) as online_amount_spent,
        coalesce(purchases.instore_orders, 0) as instore_orders,
        coalesce(purchases.instore_items_purchased, 0) as instore_items_purchased,
        cast(coalesce(purchases.instore_amount_spent, 0) as {{ dbt.type_numeric() }}) as instore_amount_spent,
        coalesce(purchases.total_orders, 0) as total_orders,
        coalesce(purchases.total_items_purchased, 0) as total_items_purchased,
        cast(coalesce(purchases.total_amount_spent, 0) as {{ dbt.type_numeric() }}) as total_amount_spent,

        -- favourite product
        favourite_products.product_name as favourite_product,
        favourite_products.purchases as favourite_product_purchases,

        -- last time of each activity
        activity.last_instore_order_at,
        activity.last_online_order_at,
        activity.last_email_sent_at,
        activity.last_email_opened_at,
        activity.last_email_clicked_at,
        activity.last_website_visit_at,
        activity.last_website_login_at,

        -- latest error
        latest_errors.error_message as latest_error_message,
        latest_errors.page as latest_error_page,
        latest_errors.last_at as latest_error_at,

        -- the greatest source time reflected for this customer
        greatest(
            marks._users_source_at,
            marks._online_orders_source_at,
            marks._instore_orders_source_at,
            marks._weblogs_source_at,
            marks._marketing_emails_source_at
        ) as as_of,

        -- watermarks
        marks._users_batch_id,
        marks._online_orders_batch_id,
        marks._instore_orders_batch_id,
        marks._weblogs_batch_id,
        marks._emails_batch_id
    from customers
    inner join marks on marks.customer_id = customers.customer_id
    left join purchases on purchases.customer_id = customers.customer_id
    left join favourite_products on favourite_products.customer_id = customers.customer_id
    left join activity on activity.customer_id = customers.customer_id
    left join latest_errors on latest_errors.customer_id = customers.customer_id
)

{{ select_with_tombstones('final', 'touched') }}
