{%- set inputs = customer_360_inputs() %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- The purchase propensity of each customer: the probability that they order (either channel)
    in the next 30 days, from the logistic regression the nightly `propensity_model` asset
    trains (customer360/propensity/). The model's coefficients, with each feature's mean and
    scale, are read from stg_propensity_coefficients when the statement runs, never rendered
    here: this SQL is the same on every build.

    Features as of the model's reference time (the latest order time when it was trained; the
    activity landed since counts, so a recency is at least 0), each standardized with the
    training mean and scale:
      days_since_last_order        days from the last order, 0-365 (365 when none)
      log_orders                   ln(1 + orders, both channels)
      log_spend                    ln(1 + amount spent, both channels)
      log_tenure_days              ln(1 + days since the users document's created_at), 0 when unknown
      days_since_last_visit        days from the last website event, 0-365 (365 when none)
      days_since_last_email_open   days from the latest first open of an email, 0-365 (365 when none)
    score = 1 / (1 + exp(-(intercept + sum of coefficient * standardized value))).
    Reasons: the features whose contribution (coefficient * standardized value) is positive,
    largest first, at most three, in words; a feature measuring an event the customer never had
    (no order: recency, orders and spend; no visit, no opened email, no created_at) is never a
    reason, though it counts in the score.

    Incremental: recomputes the customers touched by any source (as customer_360_base, whose
    row it reads), and every customer when the current model version is not the one their
    scores carry, so incremental builds equal a full refresh for the same model version. -#}

with
current_model as (
    select
        model_version,
        any_value(reference_at) as reference_at,
        any_value(intercept) as intercept,
        max(case when feature = 'days_since_last_order' then coefficient end) as days_since_last_order_coef,
        max(case when feature = 'days_since_last_order' then mean end) as days_since_last_order_mean,
        max(case when feature = 'days_since_last_order' then scale end) as days_since_last_order_scale,
        max(case when feature = 'log_orders' then coefficient end) as log_orders_coef,
        max(case when feature = 'log_orders' then mean end) as log_orders_mean,
        max(case when feature = 'log_orders' then scale end) as log_orders_scale,
        max(case when feature = 'log_spend' then coefficient end) as log_spend_coef,
        max(case when feature = 'log_spend' then mean end) as log_spend_mean,
        max(case when feature = 'log_spend' then scale end) as log_spend_scale,
        max(case when feature = 'log_tenure_days' then coefficient end) as log_tenure_days_coef,
        max(case when feature = 'log_tenure_days' then mean end) as log_tenure_days_mean,
        max(case when feature = 'log_tenure_days' then scale end) as log_tenure_days_scale,
        max(case when feature = 'days_since_last_visit' then coefficient end) as days_since_last_visit_coef,
        max(case when feature = 'days_since_last_visit' then mean end) as days_since_last_visit_mean,
        max(case when feature = 'days_since_last_visit' then scale end) as days_since_last_visit_scale,
        max(case when feature = 'days_since_last_email_open' then coefficient end) as days_since_last_email_open_coef,
        max(case when feature = 'days_since_last_email_open' then mean end) as days_since_last_email_open_mean,
        max(case when feature = 'days_since_last_email_open' then scale end) as days_since_last_email_open_scale
    from {{ ref('stg_propensity_coefficients') }}
    where model_version = (select max(model_version) from {{ ref('stg_propensity_coefficients') }})
    group by model_version
),

{#- `materialized`: read several times below; computed once (inlined, DuckDB ran the staging
    scans of `touched` and the steps up to `contributions` once per reader: ~3x the CPU). -#}
{% if is_incremental() %}
touched as materialized (
    {{ touched_customers(inputs) }}
    union
    -- a new model version rescores every customer
    select customer_id
    from {{ ref('int_customers') }}
    where (select model_version from current_model)
        is distinct from (select max(model_version) from {{ this }})
),
{% endif %}

facts as (
    select
        base.customer_id,
        greatest(base.last_online_order_at, base.last_instore_order_at) as last_order_at,
        base.total_orders,
        base.total_amount_spent,
        customers.created_at,
        base.last_website_visit_at,
        base.last_email_opened_at
    {% if is_incremental() -%}
    from {{ rows_with_keys(ref('customer_360_base'), 'customer_id', 'select customer_id from touched') }} as base
    inner join {{ rows_with_keys(ref('int_customers'), 'customer_id', 'select customer_id from touched') }} as customers
        on customers.customer_id = base.customer_id
    {%- else -%}
    from {{ ref('customer_360_base') }} as base
    inner join {{ ref('int_customers') }} as customers
        on customers.customer_id = base.customer_id
    {%- endif %}
),

elapsed as (
    select
        facts.*,
        current_model.*,
        {{ dbt.datediff('facts.last_order_at', 'current_model.reference_at', 'second') }} / 86400.0 as order_days,
        {{ dbt.datediff('facts.created_at', 'current_model.reference_at', 'second') }} / 86400.0 as tenure_days,
        {{ dbt.datediff('facts.last_website_visit_at', 'current_model.reference_at', 'second') }} / 86400.0 as visit_days,
        {{ dbt.datediff('facts.last_email_opened_at', 'current_model.reference_at', 'second') }} / 86400.0 as email_open_days
    from facts
    cross join current_model
),

feature_values as (
    select
        *,
        least(365.0, greatest(0.0, coalesce(order_days, 365.0))) as days_since_last_order,
        ln(1 + total_orders) as log_orders,
        ln(1 + greatest(0.0, cast(total_amount_spent as double))) as log_spend,
        ln(1 + greatest(0.0, coalesce(tenure_days, 0.0))) as log_tenure_days,
        least(365.0, greatest(0.0, coalesce(visit_days, 365.0))) as days_since_last_visit,
        least(365.0, greatest(0.0, coalesce(email_open_days, 365.0))) as days_since_last_email_open
    from elapsed
),

contributions as materialized (
    select
        *,
        days_since_last_order_coef * (days_since_last_order - days_since_last_order_mean) / days_since_last_order_scale as days_since_last_order_contribution,
        log_orders_coef * (log_orders - log_orders_mean) / log_orders_scale as log_orders_contribution,
        log_spend_coef * (log_spend - log_spend_mean) / log_spend_scale as log_spend_contribution,
        log_tenure_days_coef * (log_tenure_days - log_tenure_days_mean) / log_tenure_days_scale as log_tenure_days_contribution,
        days_since_last_visit_coef * (days_since_last_visit - days_since_last_visit_mean) / days_since_last_visit_scale as days_since_last_visit_contribution,
        days_since_last_email_open_coef * (days_since_last_email_open - days_since_last_email_open_mean) / days_since_last_email_open_scale as days_since_last_email_open_contribution
    from feature_values
),

{#- One row per customer and feature, with the feature in words, to rank the reasons. The words
    give the days as they are at the model's reference time, not the feature's capped 365 (an
    order 515 days before it reads "last order 515 days ago"). -#}
explained as (
    select customer_id, 1 as feature_order, days_since_last_order_contribution as contribution,
        case
            when last_order_at is null then null
            when greatest(0.0, order_days) < 1 then 'ordered within the last day'
            else 'last order ' || cast(floor(greatest(0.0, order_days)) as integer) || case when floor(greatest(0.0, order_days)) = 1 then ' day ago' else ' days ago' end
        end as reason
    from contributions
    union all
    select customer_id, 2, log_orders_contribution,
        case
            when total_orders = 0 then null
            else cast(total_orders as varchar) || case when total_orders = 1 then ' order' else ' orders' end
        end
    from contributions
    union all
    select customer_id, 3, log_spend_contribution,
        case
            when total_orders = 0 then null
            else 'spent ' || cast(cast(round(total_amount_spent, 2) as decimal(38, 2)) as varchar) || ' in total'  -- exact, not the feature's double
        end
    from contributions
    union all
    select customer_id, 4, log_tenure_days_contribution,
        case
            when tenure_days is null then null
            else 'customer for ' || cast(floor(greatest(0.0, tenure_days)) as integer) || case when floor(greatest(0.0, tenure_days)) = 1 then ' day' else ' days' end
        end
    from contributions
    union all
    select customer_id, 5, days_since_last_visit_contribution,
        case
            when last_website_visit_at is null then null
            when greatest(0.0, visit_days) < 1 then 'visited the website within the last day'
            else 'visited the website ' || cast(floor(greatest(0.0, visit_days)) as integer) || case when floor(greatest(0.0, visit_days)) = 1 then ' day ago' else ' days ago' end
        end
    from contributions
    union all
    select customer_id, 6, days_since_last_email_open_contribution,
        case
            when last_email_opened_at is null then null
            when greatest(0.0, email_open_days) < 1 then 'opened an email within the last day'
            else 'opened an email ' || cast(floor(greatest(0.0, email_open_days)) as integer) || case when floor(greatest(0.0, email_open_days)) = 1 then ' day ago' else ' days ago' end
        end
    from contributions
),

top_reasons as (
    select
        customer_id,
        max(case when reason_rank = 1 then reason end) as reason_1,
        max(case when reason_rank = 2 then reason end) as reason_2,
        max(case when reason_rank = 3 then reason end) as reason_3
    from (
        select
            customer_id,
            reason,
            row_number() over (
                partition by customer_id order by contribution desc, feature_order
            ) as reason_rank
        from explained
        where contribution > 0 and reason is not null
    ) as ranked
    where reason_rank <= 3
    group by customer_id
),

final as (
    select
        contributions.customer_id,
        1.0 / (1.0 + exp(-(
            intercept
            + days_since_last_order_contribution
            + log_orders_contribution
            + log_spend_contribution
            + log_tenure_days_contribution
            + days_since_last_visit_contribution
            + days_since_last_email_open_contribution
        ))) as propensity_score,
        top_reasons.reason_1,
        top_reasons.reason_2,
        top_reasons.reason_3,
        contributions.model_version,
        contributions.reference_at as scored_as_of,
        contributions.days_since_last_order,
        contributions.log_orders,
        contributions.log_spend,
        contributions.log_tenure_days,
        contributions.days_since_last_visit,
        contributions.days_since_last_email_open
    from contributions
    left join top_reasons on top_reasons.customer_id = contributions.customer_id
)

{{ select_with_tombstones('final', 'touched') }}
