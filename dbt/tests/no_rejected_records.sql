{{ config(severity='warn') }}

{#- Warns (never fails the build) when landed records were rejected by staging; their source,
    position and reason are in staging.stg_rejected_records. -#}

select source, batch_id, rejected_records
from {{ ref('stg_landing_batches') }}
where rejected_records > 0
