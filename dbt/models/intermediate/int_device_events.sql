{{
    config(
        materialized='incremental',
        incremental_strategy='append',
    )
}}

{#- The weblog events that identity stitching reads, one row per event: every event of an
    anonymous visitor (an `anonymous_id` and no `user_id`) and every login that carries both ids
    (a `login_success.html` event: the visitor logged in as `customer_id` on the browser
    `anonymous_id`). The page is kept only for errors and logins, as in int_weblog_rollup.
    Append-only (stg_weblogs is): the events above max(_batch_id). -#}

with events as (
    select
        event_id,
        anonymous_id,
        customer_id,
        case when customer_id is null then 'anonymous' else 'login' end as kind,
        error_message,
        case
            when error_message is not null or page = {{ login_page() }} then page
        end as page,
        event_at,
        _batch_id
    from {{ ref('stg_weblogs') }}
    where anonymous_id is not null
        and (customer_id is null or page = {{ login_page() }})
        {% if is_incremental() -%}
        and _batch_id > {{ batch_watermark() }}
        {%- endif %}
)

select * from events
