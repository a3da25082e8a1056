{%- set inputs = ['users', 'marketing_emails', 'device_events', 'anonymous_weblogs', 'guest_orders'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- Every identifier stitched to a customer, one row per (customer, type, identifier), with when
    it was first and last seen:
    - `customer_id`: the users `id`, seen from the document's `created_at` to its last
      `updated_at`;
    - `email` (trimmed, lower-case): every address a users document of the customer held (seen
      at the changes that carried it, MongoDB's change time), guest in-store orders
      matched by it (at `ordered_at`) and marketing emails sent to it (at `sent_at`);
    - `anonymous_id`: every browser the customer logged in with (at the login) or whose
      anonymous events are stitched to them (at those events).
    Customers that exist only (int_customers). Incremental (`replace_keys` on customer_id),
    touched by users, emails, logins and the two stitching models. -#}

with
{% if is_incremental() %}
touched as (
    {{ touched_customers(inputs) }}
),
{% endif %}

customers as (
    select customer_id, created_at, updated_at
    from {{ ref('int_customers') }}
    {% if is_incremental() -%}
    where customer_id in (select customer_id from touched)
    {%- endif %}
),

{#- Every branch keeps only rows whose identifier is not null, each with a filter on a stored
    column: a filter on the identifier after the union would reach each table's scan as the
    branch's expression (the marketing emails' normalized address, computed for every stored
    email before the scan keeps the touched customers' ones: ~70 ms a micro-batch at 100,000
    customers). -#}
sightings as (
    select customer_id, 'customer_id' as identifier_type, cast(customer_id as varchar) as identifier,
        created_at as seen_at
    from customers
    union all
    select customer_id, 'customer_id', cast(customer_id as varchar), updated_at
    from customers

    union all
    select customer_id, 'email', email_key, changed_at
    from {{ ref('stg_user_emails') }}
    where email_key is not null and customer_id in (select customer_id from customers)
    union all
    select customer_id, 'email', email_key, ordered_at
    from {{ ref('int_guest_order_owners') }}
    where attribution = 'email' and email_key is not null and not is_deleted
        and customer_id in (select customer_id from customers)
    union all
    {#- Staging trims an address and makes an empty one null: one that is not null normalizes
        to a key that is not null. #}
    select customer_id, 'email', {{ normalized_email('recipient_email') }}, sent_at
    from {{ ref('stg_marketing_emails') }}
    where recipient_email is not null and customer_id in (select customer_id from customers)

    union all
    select customer_id, 'anonymous_id', anonymous_id, event_at
    from {{ ref('int_device_logins') }}
    where anonymous_id is not null and customer_id in (select customer_id from customers)
    union all
    select customer_id, 'anonymous_id', anonymous_id, first_at
    from {{ ref('int_anonymous_weblog_rollup') }}
    where anonymous_id is not null and customer_id in (select customer_id from customers)
    union all
    select customer_id, 'anonymous_id', anonymous_id, last_at
    from {{ ref('int_anonymous_weblog_rollup') }}
    where anonymous_id is not null and customer_id in (select customer_id from customers)
),

final as (
    select
        customer_id,
        identifier_type,
        identifier,
        min(seen_at) as first_seen_at,
        max(seen_at) as last_seen_at
    from sightings
    group by customer_id, identifier_type, identifier
)

{{ select_with_tombstones('final', 'touched') }}
