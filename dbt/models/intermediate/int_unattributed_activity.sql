{{ config(materialized='view') }}

{#- What identity stitching could not tie to a customer, counted (never dropped): anonymous
    weblog events of browsers nobody has logged in with yet (attributed retroactively when
    someone does), and guest in-store orders whose email matches no customer, or two, at the
    time of the order. One row per kind; the stream reports them as metadata of its assets. -#}

select
    'anonymous_weblog_events' as kind,
    cast(coalesce(sum(events), 0) as {{ dbt.type_bigint() }}) as records,
    cast(count(distinct anonymous_id) as {{ dbt.type_bigint() }}) as identifiers
from {{ ref('int_anonymous_weblog_rollup') }}
where customer_id is null

union all

select
    'guest_orders_' || attribution as kind,
    cast(count(*) as {{ dbt.type_bigint() }}) as records,
    cast(count(distinct email_key) as {{ dbt.type_bigint() }}) as identifiers
from {{ ref('int_guest_order_owners') }}
where attribution in ('unmatched_email', 'ambiguous_email') and not is_deleted
group by attribution
