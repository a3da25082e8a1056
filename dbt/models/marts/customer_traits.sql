{{ config(materialized='view') }}

{#- Value, RFM segment and lifecycle stage of every customer. A view: what depends on the day
    (orders in the last N days, days since the last order, recency, segment, lifecycle) is
    computed on the day it is read, from stored facts that do not (customer_360_base's order
    totals, customer_order_days, customer_category_purchases), so time passing changes no stored
    row and an incremental build still equals a full refresh. Rules: customer_traits.yml; the
    RFM tables are the vars rfm_thresholds and rfm_segments in dbt_project.yml. -#}

with rfm_thresholds as (
    {{ values_table(
        var('rfm_thresholds'),
        ['score', 'recency_within_days', 'frequency_min_orders', 'monetary_min_value'],
        'thresholds'
    ) }}
),

rfm_segments as (
    {{ values_table(
        var('rfm_segments'),
        ['priority', 'segment', 'r_min', 'r_max', 'f_min', 'f_max', 'm_min', 'm_max'],
        'segments'
    ) }}
),

customers as (
    select
        customer_id,
        total_orders,
        total_amount_spent,
        online_orders,
        instore_orders,
        online_amount_spent,
        instore_amount_spent,
        last_online_order_at,
        last_instore_order_at
    from {{ ref('customer_360_base') }}
),

{#- "In the last N days": ordered on the day read or the N - 1 days before (days ago < N). -#}
order_days as (
    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        sum(case when {{ reading_date() }} - order_date < 30 then orders else 0 end) as orders_last_30_days,
        sum(case when {{ reading_date() }} - order_date < 90 then orders else 0 end) as orders_last_90_days,
        sum(case when {{ reading_date() }} - order_date < 365 then orders else 0 end) as orders_last_365_days
    from {{ ref('customer_order_days') }}
    group by customer_id
),

{#- Most line items, then most spent, then bought last, then name A-Z. -#}
preferred_categories as (
    select customer_id, category
    from {{ ref('customer_category_purchases') }}
    qualify row_number() over (
        partition by customer_id
        order by line_items desc, amount_spent desc, last_purchased_at desc nulls last, category asc
    ) = 1
),

facts as (
    select
        customers.customer_id,
        customers.total_orders,
        customers.total_amount_spent as lifetime_value,
        case
            when customers.total_orders > 0
            then {{ divide_to_cents('customers.total_amount_spent', 'customers.total_orders') }}
        end as average_order_value,
        cast(coalesce(order_days.orders_last_30_days, 0) as {{ dbt.type_bigint() }}) as orders_last_30_days,
        cast(coalesce(order_days.orders_last_90_days, 0) as {{ dbt.type_bigint() }}) as orders_last_90_days,
        cast(coalesce(order_days.orders_last_365_days, 0) as {{ dbt.type_bigint() }}) as orders_last_365_days,
        cast({{ reading_date() }} - order_days.last_order_date as integer) as days_since_last_order,
        cast({{ reading_date() }} - order_days.first_order_date as integer) as days_since_first_order,
        order_days.first_order_date,
        order_days.last_order_date,
        {#- Most orders, then most spent, then the channel of the latest order, then online. -#}
        case
            when customers.total_orders = 0 then null
            when customers.online_orders > customers.instore_orders then 'online'
            when customers.instore_orders > customers.online_orders then 'instore'
            when customers.online_amount_spent > customers.instore_amount_spent then 'online'
            when customers.instore_amount_spent > customers.online_amount_spent then 'instore'
            when customers.last_instore_order_at > customers.last_online_order_at then 'instore'
            else 'online'
        end as preferred_channel,
        preferred_categories.category as preferred_category
    from customers
    left join order_days on order_days.customer_id = customers.customer_id
    left join preferred_categories on preferred_categories.customer_id = customers.customer_id
),

{#- Each axis: the highest score whose threshold the customer meets (customers with orders). -#}
scores as (
    select
        facts.customer_id,
        max(case
            when thresholds.recency_within_days is null
                or facts.days_since_last_order < thresholds.recency_within_days
            then thresholds.score
        end) as recency_score,
        max(case when facts.total_orders >= thresholds.frequency_min_orders then thresholds.score end) as frequency_score,
        max(case when facts.lifetime_value >= thresholds.monetary_min_value then thresholds.score end) as monetary_score
    from facts
    cross join rfm_thresholds as thresholds
    where facts.total_orders > 0
    group by facts.customer_id
),

{#- The first rule, by priority, whose ranges hold the three scores. -#}
segments as (
    select scores.customer_id, rules.segment
    from scores
    inner join rfm_segments as rules
        on scores.recency_score between rules.r_min and rules.r_max
        and scores.frequency_score between rules.f_min and rules.f_max
        and scores.monetary_score between rules.m_min and rules.m_max
    qualify row_number() over (partition by scores.customer_id order by rules.priority) = 1
)

select
    facts.customer_id,
    facts.lifetime_value,
    facts.average_order_value,
    facts.orders_last_30_days,
    facts.orders_last_90_days,
    facts.orders_last_365_days,
    facts.days_since_last_order,
    facts.first_order_date,
    facts.last_order_date,
    facts.preferred_channel,
    facts.preferred_category,
    cast(scores.recency_score as integer) as recency_score,
    cast(scores.frequency_score as integer) as frequency_score,
    cast(scores.monetary_score as integer) as monetary_score,
    segments.segment as rfm_segment,
    {#- prospect: no order; new: first order in the last 30 days; active: last order in the
        last 90 days; at risk: in the last 365 days; lapsed: longer ago. -#}
    case
        when facts.total_orders = 0 then 'prospect'
        when facts.days_since_first_order < 30 then 'new'
        when facts.days_since_last_order < 90 then 'active'
        when facts.days_since_last_order < 365 then 'at risk'
        else 'lapsed'
    end as lifecycle_stage
from facts
left join scores on scores.customer_id = facts.customer_id
left join segments on segments.customer_id = facts.customer_id
