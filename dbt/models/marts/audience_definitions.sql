{{ config(materialized='view') }}

{#- The audiences of audience_definitions.yml as rows, for the API, the dashboard and BI tools.
    `customer_id` is always null: every relation the serving copy publishes is keyed by it. -#}

{%- set audiences = audience_definitions() %}

{% if audiences %}
select
    audience,
    description,
    channel,
    condition,
    cast(null as {{ dbt.type_bigint() }}) as customer_id
from (
    values
    {%- for a in audiences %}
    ({{ sql_string(a.name) }}, {{ sql_string(a.description | trim) }}, {{ sql_string(a.channel) }}, {{ sql_string(a.condition | trim) }}){% if not loop.last %},{% endif %}
    {%- endfor %}
) as definitions (audience, description, channel, condition)
{% else %}
select
    cast(null as varchar) as audience,
    cast(null as varchar) as description,
    cast(null as varchar) as channel,
    cast(null as varchar) as condition,
    cast(null as {{ dbt.type_bigint() }}) as customer_id
where false
{% endif %}
