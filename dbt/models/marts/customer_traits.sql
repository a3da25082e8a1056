{{ config(materialized='view') }}

{#- Value, RFM segment and lifecycle stage of every customer. A view: what depends on the day
    (orders in the last N days, days since the last order, recency, segment, lifecycle) is
    computed on the day it is read, from stored facts that do not (customer_360_base's sales
    totals, its list of the customer's sale days and its preferred category: see there), so
    time passing changes no stored row and an incremental build still equals a full refresh.
    Rules: customer_traits.yml; the RFM tables are the vars rfm_thresholds and rfm_segments in
    dbt_project.yml, written out below as one CASE per score and for the segment: row by row,
    with no join, aggregate or window over every customer, so a filter on customer_id (a
    publication's changed customers, the audiences' touched ones, a profile lookup) reaches
    customer_360_base's scan instead of scoring everyone first.
    Every trait counts sales only: orders not deleted, cancelled or returned
    (stg_online_orders.is_sale, var order_statuses_not_sold). -#}

{%- set thresholds = var('rfm_thresholds') | sort(attribute='score', reverse=true) %}
{%- set segments = var('rfm_segments') | sort(attribute='priority') %}

with customers as (
    select
        customer_id,
        _online_sales + _instore_sales as sales,
        _online_sales_amount + _instore_sales_amount as sales_amount,
        _online_sales as online_sales,
        _instore_sales as instore_sales,
        _online_sales_amount as online_sales_amount,
        _instore_sales_amount as instore_sales_amount,
        _last_online_sale_at as last_online_sale_at,
        _last_instore_sale_at as last_instore_sale_at,
        _order_days,
        _preferred_category
    from {{ ref('customer_360_base') }}
),

{#- Sale days: customer_360_base's `_order_days` (the customer's rows of customer_order_days,
    oldest first). "In the last N days": ordered on the day read or the N - 1 days before
    (days ago < N). -#}
facts as (
    select
        customer_id,
        sales,
        sales_amount as lifetime_value,
        case
            when sales > 0
            then {{ divide_to_cents('sales_amount', 'sales') }}
        end as average_order_value,
        {%- for days in [30, 90, 365] %}
        cast(coalesce(list_sum(list_transform(
            list_filter(_order_days, lambda day: {{ reading_date() }} - day.order_date < {{ days }}),
            lambda day: day.orders
        )), 0) as {{ dbt.type_bigint() }}) as orders_last_{{ days }}_days,
        {%- endfor %}
        cast({{ reading_date() }} - _order_days[-1].order_date as integer) as days_since_last_order,
        cast({{ reading_date() }} - _order_days[1].order_date as integer) as days_since_first_order,
        _order_days[1].order_date as first_order_date,
        _order_days[-1].order_date as last_order_date,
        {#- Most sales, then most spent, then the channel of the latest sale, then online. -#}
        case
            when sales = 0 then null
            when online_sales > instore_sales then 'online'
            when instore_sales > online_sales then 'instore'
            when online_sales_amount > instore_sales_amount then 'online'
            when instore_sales_amount > online_sales_amount then 'instore'
            when last_instore_sale_at > last_online_sale_at then 'instore'
            else 'online'
        end as preferred_channel,
        _preferred_category as preferred_category
    from customers
),

{#- Each axis: the highest score whose threshold the customer meets, for customers with sales
    (null for the others); the thresholds are tried from the highest score down. -#}
scored as (
    select
        *,
        case when sales > 0 then case
        {%- for t in thresholds %}
            when {{ sql_literal(t.recency_within_days) }} is null
                or days_since_last_order < {{ sql_literal(t.recency_within_days) }} then {{ t.score }}
        {%- endfor %}
        end end as recency_score,
        case when sales > 0 then case
        {%- for t in thresholds %}
            when sales >= {{ sql_literal(t.frequency_min_orders) }} then {{ t.score }}
        {%- endfor %}
        end end as frequency_score,
        case when sales > 0 then case
        {%- for t in thresholds %}
            when lifetime_value >= {{ sql_literal(t.monetary_min_value) }} then {{ t.score }}
        {%- endfor %}
        end end as monetary_score
    from facts
)

select
    customer_id,
    lifetime_value,
    average_order_value,
    orders_last_30_days,
    orders_last_90_days,
    orders_last_365_days,
    days_since_last_order,
    first_order_date,
    last_order_date,
    preferred_channel,
    preferred_category,
    cast(recency_score as integer) as recency_score,
    cast(frequency_score as integer) as frequency_score,
    cast(monetary_score as integer) as monetary_score,
    {#- The first rule, by priority, whose ranges hold the three scores. -#}
    case
    {%- for rule in segments %}
        when recency_score between {{ sql_literal(rule.r_min) }} and {{ sql_literal(rule.r_max) }}
            and frequency_score between {{ sql_literal(rule.f_min) }} and {{ sql_literal(rule.f_max) }}
            and monetary_score between {{ sql_literal(rule.m_min) }} and {{ sql_literal(rule.m_max) }}
            then {{ sql_string(rule.segment) }}
    {%- endfor %}
    end as rfm_segment,
    {#- prospect: no sale; new: first sale in the last 30 days; active: last sale in the
        last 90 days; at risk: in the last 365 days; lapsed: longer ago. -#}
    case
        when sales = 0 then 'prospect'
        when days_since_first_order < 30 then 'new'
        when days_since_last_order < 90 then 'active'
        when days_since_last_order < 365 then 'at risk'
        else 'lapsed'
    end as lifecycle_stage
from scored
