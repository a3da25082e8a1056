{#- The page of a successful login: the `Website Login` event of customer_activity. -#}
{% macro login_page() -%}
    'login_success.html'
{%- endmacro %}

{#- A customer's weblog events per error message and page: their own (int_weblog_rollup) plus
    the anonymous events stitched to them (int_anonymous_weblog_rollup); the SQL of the view
    int_customer_weblog_rollup. With `customers` (a select of customer_id) only those customers,
    filtered in each input before the union: DuckDB pushes no filter through a union's
    aggregate, so a filter on the view aggregated every customer's rows first (48-98 ms a batch
    at 100,000 customers on the loaded bench machine, whatever the batch's size). -#}
{% macro customer_weblog_rollup(customers=none) -%}
select
    customer_id,
    error_message,
    page,
    cast(sum(events) as {{ dbt.type_bigint() }}) as events,
    max(last_at) as last_at
from (
    select customer_id, error_message, page, events, last_at
    from {{ ref('int_weblog_rollup') }}
    {%- if customers %}
    where customer_id in ({{ customers }})
    {%- endif %}
    union all
    select customer_id, error_message, page, events, last_at
    from {{ ref('int_anonymous_weblog_rollup') }}
    where customer_id is not null
    {%- if customers %}
        and customer_id in ({{ customers }})
    {%- endif %}
) as logged_in_and_stitched
group by customer_id, error_message, page
{%- endmacro %}
