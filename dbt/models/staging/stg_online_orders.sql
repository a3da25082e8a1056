{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='order_id',
    )
}}

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
        batch_id,
        document as document_text
    from source
    where {{ mongo_rejection_reason('online_orders') }} is null
),

{{ mongo_current_state('typed', ['customer_id', 'channel', 'status', 'delivery_city', 'delivery_country', 'items', 'ordered_at'], key='order_id') }}

select * from current_state
