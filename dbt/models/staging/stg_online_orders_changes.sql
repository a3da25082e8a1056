{{
    config(
        materialized='incremental',
        incremental_strategy='append',
    )
}}

{#- Append-only: one row per valid change event of a MongoDB `online_orders` document, typed; a
    delete carries no document (its columns are null). stg_online_orders computes each document's
    current state from these rows. -#}

with source as (
    select *
    from {{ source('raw', 'online_orders') }}
    where batch_id > {{ batch_watermark() }}
),

typed as (
    select
        -- ids
        document_key,
        {{ json_integer('document', '$.user_id') }} as customer_id,

        -- strings
        operation,
        'Online' as channel,
        {{ json_text('document', '$.status') }} as status,
        {{ json_text('document', '$.delivery_address.city') }} as delivery_city,
        {{ json_text('document', '$.delivery_address.country') }} as delivery_country,

        -- line items: array of struct(product_id, product_name, category, price, quantity)
        {{ json_order_items('document') }} as items,

        -- timestamps
        {{ json_timestamp('document', '$.date') }} as ordered_at,

        -- change position
        cluster_time,
        cluster_at,
        batch_id as _batch_id,
        -- a cheap deterministic tie-breaker between changes at the same position
        hash(document) as _document_hash
    from source
    where {{ mongo_change_is_staged('online_orders') }}
)

select * from typed
