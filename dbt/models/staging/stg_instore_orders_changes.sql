{{
    config(
        materialized='incremental',
        incremental_strategy='append',
    )
}}

{#- Append-only: one row per valid change event of a MongoDB `instore_orders` document, typed; a
    delete carries no document (its columns are null). stg_instore_orders computes each document's
    current state from these rows. -#}

with source as (
    select *
    from {{ source('raw', 'instore_orders') }}
    where batch_id > {{ batch_watermark() }}
),

typed as (
    select
        -- ids
        document_key,
        {{ json_integer('document', '$.user_id') }} as customer_id,
        nullif({{ trimmed_text(json_text('document', '$.customer_email')) }}, '') as customer_email,

        -- strings
        operation,
        'Instore' as channel,
        {{ json_text('document', '$.store.store_id') }} as store_id,
        {{ json_text('document', '$.store.name') }} as store_name,
        {{ json_text('document', '$.store.city') }} as store_city,

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
    where {{ mongo_change_is_staged('instore_orders') }}
)

select * from typed
