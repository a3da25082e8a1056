{{ config(materialized='view') }}

{#- The audiences each customer is in now, since when: the customers whose latest change in
    audience_changes is an entry. -#}

select
    audience,
    customer_id,
    changed_at as entered_at,
    sequence as entered_sequence
from (
    select
        *,
        row_number() over (partition by audience, customer_id order by sequence desc) as recency
    from {{ ref('audience_changes') }}
) as latest
where recency = 1 and change = 'entered'
