{%- set inputs = customer_360_inputs() %}

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
/* depends_on: {{ ref('int_weblog_rollup') }} */
/* depends_on: {{ ref('int_anonymous_weblog_rollup') }} */

{#- One row per customer with everything the customer_360 view shows but age and the traits,
    computed from int_customers, staging, the weblog rollup and customer_popular_items, and
    what customer_traits derives the traits from (customer_order_days,
    customer_category_purchases). customer_activity, customer_purchase_stats and
    customer_traits are views over it.
    Favourite product: most purchases, then latest last_purchased_at, then product name A-Z.
    Latest error: latest last_at, then most occurrences, then error message A-Z, then page A-Z.
    as_of: the greatest source time reflected for the customer (see the yml), and the batch
    marks, from int_customer_marks. -#}


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

orders as (
    select customer_id, channel, ordered_at, is_sale
    from {{ ref('stg_online_orders') }}
    where not is_deleted and customer_id in (select customer_id from customers)
    union all
    select customer_id, channel, ordered_at, is_sale
    from {{ ref('stg_instore_orders') }}
    where not is_deleted and customer_id in (select customer_id from customers)
    union all
    select customer_id, 'Instore' as channel, ordered_at, is_sale
    from {{ ref('int_guest_order_owners') }}
    where attribution = 'email' and not is_deleted and customer_id in (select customer_id from customers)
),

order_totals as (
    select
        customer_id,
        sum(case when channel = 'Online' then 1 else 0 end) as online_orders,
        sum(case when channel = 'Instore' then 1 else 0 end) as instore_orders,
        max(case when channel = 'Online' then ordered_at end) as last_online_order_at,
        max(case when channel = 'Instore' then ordered_at end) as last_instore_order_at,
        -- the same over sales only (stg_online_orders.is_sale), for customer_traits
        sum(case when channel = 'Online' and is_sale then 1 else 0 end) as online_sales,
        sum(case when channel = 'Instore' and is_sale then 1 else 0 end) as instore_sales,
        max(case when channel = 'Online' and is_sale then ordered_at end) as last_online_sale_at,
        max(case when channel = 'Instore' and is_sale then ordered_at end) as last_instore_sale_at
    from orders
    group by customer_id
),

{#- Line items of orders that are not deleted (an order without items counts as an order). -#}
line_item_totals as (
    select
        customer_id,
        sum(case when channel = 'Online' then 1 else 0 end) as online_items_purchased,
        sum(case when channel = 'Online' then amount else 0 end) as online_amount_spent,
        sum(case when channel = 'Instore' then 1 else 0 end) as instore_items_purchased,
        sum(case when channel = 'Instore' then amount else 0 end) as instore_amount_spent,
        sum(case when channel = 'Online' and is_sale then amount else 0 end) as online_sales_amount,
        sum(case when channel = 'Instore' and is_sale then amount else 0 end) as instore_sales_amount
    from {{ ref('int_customer_order_items') }}
    where not is_deleted and customer_id in (select customer_id from customers)
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

{#- What customer_traits derives on the day it is read, kept here so that view reads one row
    per customer: a filter on customer_id (a publication's changed customers, the audiences'
    touched ones) then reaches this table's scan, where over customer_order_days and
    customer_category_purchases it would aggregate every customer's rows first (~120 ms a
    publication at 100,000 customers and 7.4 M events of history). The customer's order days
    (customer_order_days, oldest first) and preferred category: most line items, then most
    spent, then bought last, then name A-Z (customer_category_purchases). -#}
order_day_lists as (
    select
        customer_id,
        list({'order_date': order_date, 'orders': orders} order by order_date) as _order_days
    from {{ ref('customer_order_days') }}
    where customer_id in (select customer_id from customers)
    group by customer_id
),

preferred_categories as (
    select
        customer_id,
        first(
            category
            order by line_items desc, amount_spent desc, last_purchased_at desc nulls last, category asc
        ) as _preferred_category
    from {{ ref('customer_category_purchases') }}
    where customer_id in (select customer_id from customers)
    group by customer_id
),

{#- Email Opened / Email Clicked: the first open / first click of each email, the latest over
    the customer's emails. -#}
email_activity as (
    select
        customer_id,
        max(sent_at) as last_email_sent_at,
        max(first_opened_at) as last_email_opened_at,
        max(first_clicked_at) as last_email_clicked_at
    from {{ ref('stg_marketing_emails') }}
    where customer_id in (select customer_id from customers)
    group by customer_id
),

web_rollup as (
    select customer_id, error_message, page, events, last_at
    from {{ ref('int_customer_weblog_rollup') }}
    where customer_id in (select customer_id from customers)
),

web_activity as (
    select
        customer_id,
        max(last_at) as last_website_visit_at,
        max(case when page = {{ login_page() }} then last_at end) as last_website_login_at
    from web_rollup
    group by customer_id
),

latest_errors as (
    select customer_id, error_message, page, last_at
    from web_rollup
    where error_message is not null
    qualify row_number() over (
        partition by customer_id
        order by last_at desc nulls last, events desc, error_message asc, page asc nulls last
    ) = 1
),

marks as (
    select *
    from {{ ref('int_customer_marks') }}
    where customer_id in (select customer_id from customers)
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
        cast(coalesce(order_totals.online_orders, 0) as {{ dbt.type_bigint() }}) as online_orders,
        cast(coalesce(line_item_totals.online_items_purchased, 0) as {{ dbt.type_bigint() }}) as online_items_purchased,
        cast(coalesce(line_item_totals.online_amount_spent, 0) as {{ money_type() }}) as online_amount_spent,
        cast(coalesce(order_totals.instore_orders, 0) as {{ dbt.type_bigint() }}) as instore_orders,
        cast(coalesce(line_item_totals.instore_items_purchased, 0) as {{ dbt.type_bigint() }}) as instore_items_purchased,
        cast(coalesce(line_item_totals.instore_amount_spent, 0) as {{ money_type() }}) as instore_amount_spent,
        cast(coalesce(order_totals.online_orders, 0) + coalesce(order_totals.instore_orders, 0) as {{ dbt.type_bigint() }}) as total_orders,
        cast(
            coalesce(line_item_totals.online_items_purchased, 0) + coalesce(line_item_totals.instore_items_purchased, 0)
            as {{ dbt.type_bigint() }}
        ) as total_items_purchased,
        cast(
            coalesce(line_item_totals.online_amount_spent, 0) + coalesce(line_item_totals.instore_amount_spent, 0)
            as {{ money_type() }}
        ) as total_amount_spent,

        -- favourite product
        favourite_products.product_name as favourite_product,
        favourite_products.purchases as favourite_product_purchases,

        -- last time of each activity
        order_totals.last_instore_order_at,
        order_totals.last_online_order_at,
        email_activity.last_email_sent_at,
        email_activity.last_email_opened_at,
        email_activity.last_email_clicked_at,
        web_activity.last_website_visit_at,
        web_activity.last_website_login_at,

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
            marks._marketing_emails_source_at,
            marks._anonymous_weblogs_source_at,
            marks._guest_orders_source_at
        ) as as_of,

        -- what customer_traits derives the traits from, on the day it is read: the sales
        -- (orders not cancelled or returned) per channel, their days, the preferred category
        cast(coalesce(order_totals.online_sales, 0) as {{ dbt.type_bigint() }}) as _online_sales,
        cast(coalesce(order_totals.instore_sales, 0) as {{ dbt.type_bigint() }}) as _instore_sales,
        cast(coalesce(line_item_totals.online_sales_amount, 0) as {{ money_type() }}) as _online_sales_amount,
        cast(coalesce(line_item_totals.instore_sales_amount, 0) as {{ money_type() }}) as _instore_sales_amount,
        order_totals.last_online_sale_at as _last_online_sale_at,
        order_totals.last_instore_sale_at as _last_instore_sale_at,
        order_day_lists._order_days,
        preferred_categories._preferred_category,

        -- watermarks
        marks._users_batch_id,
        marks._online_orders_batch_id,
        marks._instore_orders_batch_id,
        marks._weblogs_batch_id,
        marks._emails_batch_id,
        marks._anonymous_weblogs_batch_id,
        marks._guest_orders_batch_id,
        marks._guest_orders_orders_batch_id,
        marks._guest_orders_users_batch_id
    from customers
    left join marks on marks.customer_id = customers.customer_id
    left join order_totals on order_totals.customer_id = customers.customer_id
    left join line_item_totals on line_item_totals.customer_id = customers.customer_id
    left join favourite_products on favourite_products.customer_id = customers.customer_id
    left join email_activity on email_activity.customer_id = customers.customer_id
    left join web_activity on web_activity.customer_id = customers.customer_id
    left join latest_errors on latest_errors.customer_id = customers.customer_id
    left join order_day_lists on order_day_lists.customer_id = customers.customer_id
    left join preferred_categories on preferred_categories.customer_id = customers.customer_id
)

{{ select_with_tombstones('final', 'touched') }}
