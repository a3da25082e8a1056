{{
    config(
        materialized='incremental',
        incremental_strategy='append',
    )
}}

{#- One row per raw table and landing batch: how many records landed and which of them staging
    rejects (bad types), with why. Every batch gets a row, even with nothing rejected, so the
    per-source watermark (greatest batch_id of that source here) always advances. -#}

{%- set mongo_sources = ['users', 'online_orders', 'instore_orders'] %}
{%- set kafka_sources = ['weblogs', 'marketing_emails'] %}

with
{% for name in mongo_sources + kafka_sources %}
{{ name }}_records as (
    select
        '{{ name }}' as source,
        batch_id,
        {% if name in mongo_sources -%}
        {{ dbt.concat(["document_key", "'@'", dbt.cast("cluster_time", dbt.type_string())]) }} as position,
        {{ mongo_rejection_reason(name) }} as reason
        {%- else -%}
        {{ dbt.concat(["topic", "'/'", dbt.cast('"partition"', dbt.type_string()), "'@'", dbt.cast('"offset"', dbt.type_string())]) }} as position,
        {{ kafka_rejection_reason(name) }} as reason
        {%- endif %}
    from (
        select *{% if name in kafka_sources %}, {{ kafka_value_fields(name) }} as _value_fields{% endif %}
        from {{ source('raw', name) }}
        where batch_id > {{ relation_max('batch_id', "source = '" ~ name ~ "'") }}
    ) as landed
),
{% endfor %}

landed_records as (
    {% for name in mongo_sources + kafka_sources -%}
    select * from {{ name }}_records
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    source,
    batch_id,
    count(*) as landed_records,
    count(reason) as rejected_records,
    {{ record_array_agg({'position': 'position', 'reason': 'reason'}, 'position', 'reason is not null') }} as rejections
from landed_records
group by source, batch_id
