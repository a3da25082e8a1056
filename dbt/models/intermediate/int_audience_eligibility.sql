{{ config(materialized='view') }}

{#- Who qualifies for each audience now: the audiences of audience_definitions.yml evaluated
    over customer_360 (every customer that exists) with `today` the UTC date of the reading.
    An audience for the email channel also needs granted email consent. The definition of
    membership: audience_changes records its changes.

    customer_360 is read once, crossed with the audience names, each row kept when its
    audience's condition holds (a CASE on the name): a filter on customer_id (audience_changes'
    touched customers) then reaches customer_360's scans, where one read per audience (a union
    of the audiences over a shared CTE) evaluated every customer first. -#}

{%- set audiences = audience_definitions() %}

with profile as (
    select *, {{ reading_date() }} as today
    from {{ ref('customer_360') }}
)

{% if audiences %}
, audiences as (
    {{ values_column(audiences | map(attribute='name') | list, 'audience') }}
)

select audiences.audience, profile.customer_id
from profile
cross join audiences
where case audiences.audience
    {%- for a in audiences %}
    when {{ sql_string(a.name) }} then coalesce(({{ a.condition | trim }}), false)
        {%- if a.channel == 'email' %} and email_consent = 'granted'{% endif %}
    {%- endfor %}
end
{% else %}
select cast(null as varchar) as audience, customer_id
from profile
where false
{% endif %}
