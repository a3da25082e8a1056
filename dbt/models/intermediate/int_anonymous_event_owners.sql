{{ config(materialized='view') }}

{#- Every anonymous website event with the customer identity stitching gives it (the macro
    anonymous_event_owners, which int_anonymous_weblog_rollup applies to the browsers a batch
    touches) and since when: `attributed_at`, the time of the login that gives it to them.

    A view: propensity training reads it as of past cut-offs, where an event at or before a
    cut-off had the owner it has now exactly when `attributed_at` is at or before the cut-off
    too (the latest login at or before an event comes before it and no later login changes
    that; an event before every login goes to the browser's first login, which the cut-off
    either includes or not). -#}

with
device_events as (
    select * from {{ ref('int_device_events') }}
),

{{ anonymous_event_owners('device_events') }}

select anonymous_id, event_id, event_at, customer_id, attributed_at
from attributed
