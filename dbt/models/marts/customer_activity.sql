{{ config(materialized='view') }}

{#- The last time each kind of event happened for a customer, one row per event that happened:
    customer_360_base's last_* columns as rows. A view, so the micro-batch keeps one table per
    customer up to date instead of two. Each customer_360_base row is read once and crossed with
    the kinds of event (not one select per kind, each with its own `is not null` filter): a
    lookup of one customer is then a lookup of one key, which DuckDB serves from the table's
    index; a filter on another column beside the key makes it scan the whole table instead
    (~13 ms against ~2.5 ms per profile at 100,000 customers). -#}

{%- set events = [
    ('Instore Order', 'last_instore_order_at'),
    ('Online Order', 'last_online_order_at'),
    ('Email Sent', 'last_email_sent_at'),
    ('Email Opened', 'last_email_opened_at'),
    ('Email Clicked', 'last_email_clicked_at'),
    ('Website Visit', 'last_website_visit_at'),
    ('Website Login', 'last_website_login_at'),
] %}

with events as (
    {{ values_column(events | map(attribute=0) | list, 'event') }}
),

activity as (
    select
        base.customer_id,
        events.event,
        case events.event
        {%- for event, column in events %}
            when {{ sql_string(event) }} then base.{{ column }}
        {%- endfor %}
        end as last_at
    from {{ ref('customer_360_base') }} as base
    cross join events
)

select customer_id, event, last_at
from activity
where last_at is not null
