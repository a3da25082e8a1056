{%- set inputs = ['users', 'online_orders', 'instore_orders', 'weblogs', 'marketing_emails'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- The last time each kind of event happened for a customer; no row for an event that never
    happened. Email Opened / Email Clicked: the first open / first click of each email, the
    latest over the customer's emails. -#}


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

instore_orders as (
    select customer_id, ordered_at
    from {{ ref('stg_instore_orders') }}
    where not is_deleted and customer_id in (select customer_id from customers)
),

online_orders as (
    select customer_id, ordered_at
    from {{ ref('stg_online_orders') }}
    where not is_deleted and customer_id in (select customer_id from customers)
),

emails as (
    select customer_id, sent_at, first_opened_at, first_clicked_at
    from {{ ref('stg_marketing_emails') }}
    where customer_id in (select customer_id from customers)
),

weblogs as (
    select customer_id, event_at, page
    from {{ ref('stg_weblogs') }}
    where customer_id in (select customer_id from customers)
),

events as (
    select customer_id, 'Instore Order' as event, max(ordered_at) as last_at
    from instore_orders group by customer_id
    union all
    select customer_id, 'Online Order' as event, max(ordered_at) as last_at
    from online_orders group by customer_id
    union all
    select customer_id, 'Email Sent' as event, max(sent_at) as last_at
    from emails group by customer_id
    union all
    select customer_id, 'Email Opened' as event, max(first_opened_at) as last_at
    from emails where first_opened_at is not null group by customer_id
    union all
    select customer_id, 'Email Clicked' as event, max(first_clicked_at) as last_at
    from emails where first_clicked_at is not null group by customer_id
    union all
    select customer_id, 'Website Visit' as event, max(event_at) as last_at
    from weblogs group by customer_id
    union all
    select customer_id, 'Website Login' as event, max(event_at) as last_at
    from weblogs where page = 'login_success.html' group by customer_id
),

marks as (
    {{ customer_batch_marks(inputs, 'customers') }}
),

final as (
    select
        events.customer_id,
        events.event,
        events.last_at,
        marks._users_batch_id,
        marks._online_orders_batch_id,
        marks._instore_orders_batch_id,
        marks._weblogs_batch_id,
        marks._emails_batch_id
    from events
    inner join marks on marks.customer_id = events.customer_id
)

{{ select_with_tombstones('final', 'touched') }}
