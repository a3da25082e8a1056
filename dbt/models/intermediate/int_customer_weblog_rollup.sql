{{ config(materialized='view') }}

{#- A customer's weblog events per error message and page, whether they were logged in
    (int_weblog_rollup) or browsing anonymously on a browser stitched to them
    (int_anonymous_weblog_rollup): what the marts show as activity and recent errors. -#}

select
    customer_id,
    error_message,
    page,
    cast(sum(events) as {{ dbt.type_bigint() }}) as events,
    max(last_at) as last_at
from (
    select customer_id, error_message, page, events, last_at
    from {{ ref('int_weblog_rollup') }}
    union all
    select customer_id, error_message, page, events, last_at
    from {{ ref('int_anonymous_weblog_rollup') }}
    where customer_id is not null
) as logged_in_and_stitched
group by customer_id, error_message, page
