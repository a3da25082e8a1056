{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
    )
}}

{#- Weblog events rolled up per customer, error message and page: how many and the latest.
    The page is kept only where a mart needs it (events with an error, logins); a customer's
    other events fold into one row with both null. The marts read these few rows per customer
    instead of every stored weblog event.

    stg_weblogs is append-only with one row per event_id, so a build adds the counts of the
    events new since its watermark (max(_batch_id) of this table) to the touched customers'
    stored rows: it reads no history. Events of customers that do not exist (yet) are kept, so
    they count once the customer's users document lands. Anonymous events (no user_id) are
    int_anonymous_weblog_rollup's. -#}

with

new_events as (
    select
        customer_id,
        error_message,
        case
            when error_message is not null or page = {{ login_page() }} then page
        end as page,
        event_at,
        _batch_id
    from {{ ref('stg_weblogs') }}
    where customer_id is not null
    {% if is_incremental() -%}
    and _batch_id > {{ batch_watermark() }}
    {%- endif %}
),

new_rollup as (
    select
        customer_id,
        error_message,
        page,
        count(*) as events,
        max(event_at) as last_at,
        max(_batch_id) as _batch_id
    from new_events
    group by customer_id, error_message, page
),

{% if is_incremental() %}
touched as (
    select distinct customer_id from new_rollup
),

{#- Grouping by (customer_id, error_message, page) treats nulls as equal, so a stored row and
    a new one with the same null page add up. -#}
rollup as (
    select
        customer_id,
        error_message,
        page,
        sum(events) as events,
        max(last_at) as last_at,
        max(_batch_id) as _batch_id
    from (
        select customer_id, error_message, page, events, last_at, _batch_id
        from new_rollup
        union all
        select customer_id, error_message, page, events, last_at, _batch_id
        from {{ this }}
        where customer_id in (select customer_id from touched)
    ) as stored_and_new
    group by customer_id, error_message, page
),
{% else %}
rollup as (
    select * from new_rollup
),
{% endif %}

final as (
    select
        customer_id,
        error_message,
        page,
        cast(events as {{ dbt.type_bigint() }}) as events,
        last_at,
        _batch_id
    from rollup
)

{{ select_with_tombstones('final', 'touched') }}
