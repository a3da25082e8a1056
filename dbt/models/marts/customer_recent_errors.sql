{%- set inputs = ['users', 'weblogs'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- The errors a customer met on the website: per error message and page, when it last
    happened and how often. -#}


with
{% if is_incremental() %}
touched as (
    {{ touched_customers(inputs) }}
),
{% endif %}

customers as (
    select customer_id
    from {{ ref('int_customers') }}
    {% if is_incremental() -%}
    where customer_id in (select customer_id from touched)
    {%- endif %}
),

errors as (
    select
        customer_id,
        error_message,
        page,
        max(event_at) as last_at,
        count(*) as occurrences
    from {{ ref('stg_weblogs') }}
    where error_message is not null
        and customer_id in (select customer_id from customers)
    group by customer_id, error_message, page
),

marks as (
    {{ customer_batch_marks(inputs, 'customers') }}
),

final as (
    select
        errors.customer_id,
        errors.error_message,
        errors.page,
        errors.last_at,
        errors.occurrences,
        marks._users_batch_id,
        marks._weblogs_batch_id
    from errors
    inner join marks on marks.customer_id = errors.customer_id
)

{{ select_with_tombstones('final', 'touched') }}
