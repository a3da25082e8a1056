{%- set inputs = ['device_events'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='anonymous_id',
        post_hook=watermark_hook(inputs),
    )
}}


{#- Anonymous weblog events attributed to customers, rolled up per browser (`anonymous_id`),
    customer, error message and page, like int_weblog_rollup.

    The rule (dbt/README.md, "Identity stitching"; stated once in the macro
    anonymous_event_owners, which int_anonymous_event_owners applies to every event): an
    anonymous event belongs to the customer whose login on the same anonymous_id is the latest at
    or before the event (on a shared device each customer gets the events after their own
    login); an event before any login belongs to the first customer who logged in with it. An
    anonymous_id nobody logged in with yet is unattributed (`customer_id` null): counted, and
    attributed retroactively by the batch that lands its first login.

    A build rewrites every browser with a new event or login (`replace_keys` on anonymous_id).
    A login moves a stored event to another customer only when it is not later than the event
    (it becomes the latest login before it) or than the browser's first login (it becomes the
    first), so a browser with a new login at or before its latest stored event or login (a late
    login, rare in a live stream) is recomputed from all its stored events in
    int_device_events. Every other touched browser keeps its stored events' owners: its new
    events are attributed by all its logins, stored and new, and added to its stored rows
    (counts summed, first and last times kept), and stored rows nobody owned yet (no login
    before this batch) go to its first login's customer: the same rows a recomputation gives,
    read from its logins and rows instead of all its events (~30 after a year).
    `_customer_ids` (every customer who logged in on the browser) are the customers whose marts
    a recomputation can change. -#}

-- depends_on: {{ ref('int_customers') }}
-- (built after it: its post-hook creates intermediate.dbt_watermarks on a first build, and
-- two models creating that table side by side conflict)
-- depends_on: {{ ref('int_device_logins') }}
-- (read by incremental builds only)
with
{% if is_incremental() %}
new_events as (
    select *
    from {{ ref('int_device_events') }}
    where _batch_id > {{ model_watermark('device_events') }}
),

touched as (
    select distinct anonymous_id
    from new_events
),

{#- Every login of a touched browser, stored or new. -#}
touched_logins as (
    select *
    from {{ rows_with_keys(ref('int_device_logins'), 'anonymous_id', 'select anonymous_id from touched') }} as logins
),

stored_rows as (
    select anonymous_id, customer_id, error_message, page, events, first_at, last_at
    from {{ this }}
    where anonymous_id in (select anonymous_id from touched)
),

{#- The time of a touched browser's latest stored event: its stored rows' last events and its
    logins before this batch. -#}
stored_latest as (
    select anonymous_id, max(event_at) as latest_at
    from (
        select anonymous_id, last_at as event_at from stored_rows
        union all
        select anonymous_id, event_at
        from touched_logins
        where _batch_id <= {{ model_watermark('device_events') }}
    ) as stored
    group by anonymous_id
),

late_logged as (
    select distinct new_events.anonymous_id
    from new_events
    inner join stored_latest on stored_latest.anonymous_id = new_events.anonymous_id
    where new_events.kind = 'login' and new_events.event_at <= stored_latest.latest_at
),

added_to as (
    select anonymous_id from touched
    except
    select anonymous_id from late_logged
),
{% endif %}

{#- The events attributed below: on a full build, all; on an incremental one, every event of a
    browser with a late login, and the logins and new anonymous events of the others. -#}
device_events as (
    {% if is_incremental() -%}
    select *
    from {{ rows_with_keys(ref('int_device_events'), 'anonymous_id', 'select anonymous_id from late_logged') }} as late_logged_events
    union all
    select *
    from touched_logins
    where anonymous_id in (select anonymous_id from added_to)
    union all
    select *
    from new_events
    where kind = 'anonymous' and anonymous_id in (select anonymous_id from added_to)
    {%- else -%}
    select * from {{ ref('int_device_events') }}
    {%- endif %}
),

{#- Who each anonymous event belongs to: the stitching rule, the macro anonymous_event_owners
    (its CTEs: logins, anonymous_events, last_login_at_instant, first_login and `attributed`,
    the anonymous events with their `customer_id`). -#}
{{ anonymous_event_owners('device_events') }},

devices as (
    select
        anonymous_id,
        {{ sorted_distinct_array_agg('customer_id') }} as _customer_ids,
        max(_batch_id) as _batch_id
    from device_events
    group by anonymous_id
),

rolled_up as (
    select
        attributed.anonymous_id,
        attributed.customer_id,
        attributed.error_message,
        attributed.page,
        cast(count(*) as {{ dbt.type_bigint() }}) as events,
        min(attributed.event_at) as first_at,
        max(attributed.event_at) as last_at,
        devices._customer_ids,
        devices._batch_id
    from attributed
    inner join devices on devices.anonymous_id = attributed.anonymous_id
    group by
        attributed.anonymous_id, attributed.customer_id, attributed.error_message,
        attributed.page, devices._customer_ids, devices._batch_id
),

final as (
    {% if is_incremental() -%}
    select *
    from rolled_up
    where anonymous_id in (select anonymous_id from late_logged)

    union all

    {# A browser's `_customer_ids` and `_batch_id` (`devices`: its logins' customers, its
       newest event's batch, a new one): its stored rows take them too. Stored rows without a
       customer are of a browser without a login before this batch: every one of their events
       is before its first login (none is late), so they are the first login's customer's, if
       it has one now. #}
    select
        rows.anonymous_id,
        coalesce(rows.customer_id, first_login.customer_id) as customer_id,
        rows.error_message,
        rows.page,
        cast(sum(rows.events) as {{ dbt.type_bigint() }}) as events,
        min(rows.first_at) as first_at,
        max(rows.last_at) as last_at,
        devices._customer_ids,
        devices._batch_id
    from (
        select anonymous_id, customer_id, error_message, page, events, first_at, last_at
        from stored_rows
        where anonymous_id in (select anonymous_id from added_to)
        union all
        select anonymous_id, customer_id, error_message, page, events, first_at, last_at
        from rolled_up
        where anonymous_id in (select anonymous_id from added_to)
    ) as rows
    inner join devices on devices.anonymous_id = rows.anonymous_id
    left join first_login on first_login.anonymous_id = rows.anonymous_id
    group by
        rows.anonymous_id, coalesce(rows.customer_id, first_login.customer_id),
        rows.error_message, rows.page, devices._customer_ids, devices._batch_id
    {%- else -%}
    select * from rolled_up
    {%- endif %}
)

{{ select_with_tombstones('final', 'touched', key='anonymous_id') }}
