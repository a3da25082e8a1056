{{
    config(
        materialized='incremental',
        incremental_strategy='append',
    )
}}

{#- The logins of int_device_events (a customer logged in on a browser), one row per login, with
    the same columns. Identity stitching looks up the logins of the browsers and customers a
    micro-batch touches; here that reads ~15 % of the device events instead of scanning every
    one of them. Append-only (int_device_events is): the logins above max(_batch_id). -#}

select *
from {{ ref('int_device_events') }}
where kind = 'login'
    {% if is_incremental() -%}
    and _batch_id > {{ batch_watermark() }}
    {%- endif %}
