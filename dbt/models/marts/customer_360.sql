{{ config(materialized='view') }}

{#- A view so `age` is right on the day it is read, birthdays included, with no rebuild. -#}

select
    base.customer_id,
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
    -- value, RFM segment and lifecycle (customer_traits, computed on the day read)
    traits.lifetime_value,
    traits.average_order_value,
    traits.orders_last_30_days,
    traits.orders_last_90_days,
    traits.orders_last_365_days,
    traits.days_since_last_order,
    traits.first_order_date,
    traits.preferred_channel,
    traits.preferred_category,
    traits.recency_score,
    traits.frequency_score,
    traits.monetary_score,
    traits.rfm_segment,
    traits.lifecycle_stage,
    -- email marketing consent (customer_consent)
    consent.email_consent,
    consent.email_consent_since
from {{ ref('customer_360_base') }} as base
left join {{ ref('customer_traits') }} as traits on traits.customer_id = base.customer_id
left join {{ ref('customer_consent') }} as consent on consent.customer_id = base.customer_id
