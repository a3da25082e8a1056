{{ config(materialized='view') }}

{#- The landed records that staging excluded because they could not be typed (user_id not an
    integer, date not a timestamp, ...): one row each, with where it sits in raw and why. -#}

with batches as (
    select source, batch_id, {{ unnest_array('rejections') }} as rejection
    from {{ ref('stg_landing_batches') }}
    where rejected_records > 0
)

select
    source,
    batch_id,
    rejection.position as position,
    rejection.reason as reason
from batches
