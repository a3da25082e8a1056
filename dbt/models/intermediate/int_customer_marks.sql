{%- set inputs = customer_360_inputs() %}
{%- set columns = customer_mark_columns(inputs) %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        tombstones=false,
        post_hook=watermark_hook(inputs),
    )
}}

{#- After int_customers, whose post-hook creates the watermarks table on a first build. -#}
/* depends_on: {{ ref('int_customers') }} */

{#- Per customer id that any source ever named (deleted customers' included), per source: the
    greatest staging `_batch_id` and the greatest source time of the rows that count for the
    customer (see source_marks_since_watermark). The marts take their batch marks and as_of
    from here.

    These maxima never go down: a staging row is only ever replaced by one with a higher
    `_batch_id` and a source time no earlier (a later change, more events), and a row keeps in
    `_customer_ids` every customer it ever counted for. So an incremental build takes the
    greater of the stored marks and those of the rows since its watermark, the same as a full
    build over every row, and reads only the changed rows and the changed customers' marks. -#}

with
{%- for name in inputs %}
{{ name }}_changes as (
    {{ source_marks_since_watermark(name) }}
),
{%- endfor %}

changes as (
    {%- for name in inputs %}
    {% if not loop.first %}{{ union_all_by_name() }}{% endif %}
    select * from {{ name }}_changes
    {%- endfor %}
),

marks_so_far as (
    select * from changes
    {%- if is_incremental() %}
    {{ union_all_by_name() }}
    select * from {{ this }}
    where customer_id in (select customer_id from changes)
    {%- endif %}
)

select
    customer_id
    {%- for column in columns %},
    max({{ column }}) as {{ column }}
    {%- endfor %}
from marks_so_far
group by customer_id
