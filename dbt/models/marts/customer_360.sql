{{ config(materialized='view') }}

{#- A view so `age` is right on the day it is read, birthdays included, with no rebuild. -#}

select
    customer_id,
    first_name,
    last_name,
    email,
    gender,
    dob,
    {{ age_in_years('dob', reading_date()) }} as age,
    city,
    country,
    online_orders,
    online_items_purchased,
    online_amount_spent,
    instore_orders,
    instore_items_purchased,
    instore_amount_spent,
    total_orders,
    total_items_purchased,
    total_amount_spent,
    favourite_product,
    favourite_product_purchases,
    last_instore_order_at,
    last_online_order_at,
    last_email_sent_at,
    last_email_opened_at,
    last_email_clicked_at,
    last_website_visit_at,
    last_website_login_at,
    latest_error_message,
    latest_error_page,
    latest_error_at,
    as_of,
    consent.email_consent,
    consent.email_consent_since
from {{ ref('customer_360_base') }}
left join {{ ref('customer_consent') }} as consent using (customer_id)
