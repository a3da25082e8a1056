{{ config(materialized='view') }}

{#- A customer's weblog events per error message and page, whether they were logged in
    (int_weblog_rollup) or browsing anonymously on a browser stitched to them
    (int_anonymous_weblog_rollup): what the marts show as activity and recent errors. The SQL
    is the macro customer_weblog_rollup, which customer_360_base runs for its touched
    customers only. -#}

{{ customer_weblog_rollup() }}
