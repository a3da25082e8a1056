{%- set inputs = ['weblogs', 'anonymous_weblogs'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- A customer's weblog events per error message and page, whether they were logged in
    (int_weblog_rollup) or browsing anonymously on a browser stitched to them
    (int_anonymous_weblog_rollup): what the marts show as activity and recent errors.

    A table, recomputed for the customers whose rollup rows changed (an anonymous event that
    moves to another customer touches both), so that customer_360_base and the serving copy
    read a few customers' rows: over a view, a filter on the customer does not pass the
    aggregate, and every customer's rollup was summed on each micro-batch. -#}

with
{% if is_incremental() %}
touched as (
    {{ touched_customers(inputs) }}
),
{% endif %}

logged_in_and_stitched as (
    select customer_id, error_message, page, events, last_at
    from {{ ref('int_weblog_rollup') }}
    {% if is_incremental() -%}
    where customer_id in (select customer_id from touched)
    {%- endif %}
    union all
    select customer_id, error_message, page, events, last_at
    from {{ ref('int_anonymous_weblog_rollup') }}
    where customer_id is not null
    {% if is_incremental() -%}
        and customer_id in (select customer_id from touched)
    {%- endif %}
),

rollup as (
    select
        customer_id,
        error_message,
        page,
        cast(sum(events) as {{ dbt.type_bigint() }}) as events,
        max(last_at) as last_at
    from logged_in_and_stitched
    group by customer_id, error_message, page
)

{{ select_with_tombstones('rollup', 'touched') }}
