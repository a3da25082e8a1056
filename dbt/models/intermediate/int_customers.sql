{{ config(materialized='view') }}

{#- The customers that exist (see the macro current_customers). A view: the incremental models
    that need customers rank only the touched customers' documents themselves, so a
    micro-batch runs one model fewer. No age here: it depends on the day the row is read (see
    customer_details). -#}

select
    customer_id,
    document_key,
    first_name,
    last_name,
    email,
    gender,
    dob,
    street,
    city,
    postcode,
    country,
    created_at,
    updated_at
from ({{ current_customers() }}) as customers
