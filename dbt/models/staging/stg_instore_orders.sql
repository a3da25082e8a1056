{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='order_id',
    )
}}

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
        nullif(trim({{ json_text('document', '$.customer_email') }}), '') as customer_email,

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
        batch_id,
        document as document_text
    from source
    where {{ mongo_rejection_reason('instore_orders') }} is null
),

{{ mongo_current_state('typed', ['customer_id', 'customer_email', 'channel', 'store_id', 'store_name', 'store_city', 'items', 'ordered_at'], key='order_id') }}

select * from current_state
