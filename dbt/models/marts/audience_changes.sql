{%- set inputs = customer_360_inputs() %}
{%- set day_number = "date_diff('day', date '1970-01-01', " ~ reading_date() ~ ")" %}

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        unique_key='sequence',
        full_refresh=false,
        post_hook=[
            watermark_hook(inputs),
            "insert into {{ customer360.watermarks_relation() }} (model, source, batch_id) values
                ('{{ this.identifier }}', 'audience_day', " ~ day_number ~ "),
                ('{{ this.identifier }}', 'audience_definitions', {{ customer360.audience_definitions_version() }})",
        ],
    )
}}

-- depends_on: {{ ref('customer_360_base') }}, {{ ref('stg_users') }}, {{ ref('stg_online_orders') }}
-- depends_on: {{ ref('stg_instore_orders') }}, {{ ref('int_weblog_rollup') }}, {{ ref('stg_marketing_emails') }}
-- depends_on: {{ ref('int_anonymous_weblog_rollup') }}, {{ ref('int_guest_order_owners') }}

{# Every entry into and exit from an audience, in order (`sequence`), appended as builds see
    them; the history the Kafka topic `audience_changes` is published from. A build evaluates
    int_audience_eligibility for the customers it touches (any change to their profile) and
    compares it with their latest change here: qualifying and not a member -> 'entered', a member
    no longer qualifying (or deleted, or in an audience that was removed) -> 'exited'. Every
    customer is evaluated again on the first build of a UTC day (time-relative conditions move
    with `today`) and after the definitions changed. A history is not rebuilt: `full_refresh`
    is off, so `dbt build --full-refresh` keeps it and appends only real changes. #}


with
{% if is_incremental() %}
clock as (
    select
        coalesce((
            select max(batch_id) from {{ customer360.watermarks_relation() }}
            where model = '{{ this.identifier }}' and source = 'audience_day'
        ), -1) < {{ day_number }}
        or coalesce((
            select max(batch_id) from {{ customer360.watermarks_relation() }}
            where model = '{{ this.identifier }}' and source = 'audience_definitions'
        ), -1) <> {{ audience_definitions_version() }} as everyone
),

touched as (
    {{ touched_customers(inputs) }}
    union
    select customer_id from {{ ref('customer_360_base') }} where (select everyone from clock)
    union
    select customer_id from {{ this }} where (select everyone from clock)
),

members as (
    select audience, customer_id
    from (
        select
            audience,
            customer_id,
            change,
            row_number() over (partition by audience, customer_id order by sequence desc) as recency
        from {{ this }}
        where customer_id in (select customer_id from touched)
    ) as latest
    where recency = 1 and change = 'entered'
),

eligible as (
    select audience, customer_id
    from {{ ref('int_audience_eligibility') }}
    where customer_id in (select customer_id from touched)
),

new_changes as (
    select audience, customer_id, 'entered' as change
    from eligible
    where not exists (
        select 1 from members
        where members.audience = eligible.audience and members.customer_id = eligible.customer_id
    )
    union all
    select audience, customer_id, 'exited' as change
    from members
    where not exists (
        select 1 from eligible
        where eligible.audience = members.audience and eligible.customer_id = members.customer_id
    )
)
{% else %}
new_changes as (
    select audience, customer_id, 'entered' as change
    from {{ ref('int_audience_eligibility') }}
)
{% endif %}

select
    cast(
        {% if is_incremental() %}(select coalesce(max(sequence), 0) from {{ this }}){% else %}0{% endif %}
        + row_number() over (order by audience, customer_id, change)
        as {{ dbt.type_bigint() }}
    ) as sequence,
    audience,
    customer_id,
    change,
    cast(timezone('UTC', {{ dbt.current_timestamp() }}) as timestamp) as changed_at
from new_changes
