{{ config(materialized='view') }}

{#- The last time each kind of event happened for a customer, one row per event that happened:
    customer_360_base's last_* columns as rows. A view, so the micro-batch keeps one table per
    customer up to date instead of two. -#}

{%- set events = [
    ('Instore Order', 'last_instore_order_at'),
    ('Online Order', 'last_online_order_at'),
    ('Email Sent', 'last_email_sent_at'),
    ('Email Opened', 'last_email_opened_at'),
    ('Email Clicked', 'last_email_clicked_at'),
    ('Website Visit', 'last_website_visit_at'),
    ('Website Login', 'last_website_login_at'),
] %}

{% for event, column in events %}
select customer_id, '{{ event }}' as event, {{ column }} as last_at
from {{ ref('customer_360_base') }}
where {{ column }} is not null
{% if not loop.last %}union all{% endif %}
{% endfor %}
