{{ config(materialized='view') }}

{#- Who qualifies for each audience now: the audiences of audience_definitions.yml evaluated
    over customer_360 (every customer that exists) with `today` the UTC date of the reading.
    An audience for the email channel also needs granted email consent. The definition of
    membership: audience_changes records its changes; a filter on customer_id reaches the
    scans of customer_360 through this view. -#}

{%- set audiences = audience_definitions() %}

with profile as (
    select *, {{ reading_date() }} as today
    from {{ ref('customer_360') }}
)

{% for a in audiences %}
{% if not loop.first %}union all{% endif %}
select {{ sql_string(a.name) }} as audience, customer_id
from profile
where coalesce(({{ a.condition | trim }}), false)
    {%- if a.channel == 'email' %}
    and email_consent = 'granted'
    {%- endif %}
{% endfor %}
{% if not audiences %}
select cast(null as varchar) as audience, customer_id
from profile
where false
{% endif %}
