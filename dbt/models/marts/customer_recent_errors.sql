{{ config(materialized='view') }}

{#- The errors a customer met on the website: per error message and page, when it last
    happened and how often. The error rows of the weblog rollup (logged in, and anonymous
    events stitched to the customer), for customers that exist. -#}

select
    web.customer_id,
    web.error_message,
    web.page,
    web.last_at,
    web.events as occurrences
from {{ ref('int_customer_weblog_rollup') }} as web
where web.error_message is not null
    and web.customer_id in (select customer_id from {{ ref('int_customers') }})
