{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='order_id',
    )
}}

{#- The current state of each `instore_orders` document, recomputed from all its changes
    (stg_instore_orders_changes) whenever it has a new one, so an incremental build gives what a
    full refresh gives. Order of a document's changes: cluster time, then landing batch, then a
    delete after a document at the same position, then `_document_hash` (any fixed order). -#}

with changed_documents as (
    -- the documents with a change this model has not taken in yet
    select distinct document_key
    from {{ ref('stg_instore_orders_changes') }}
    where _batch_id > {{ batch_watermark() }}
),

changes as (
    -- all the changes of those documents, old ones included
    {% if is_incremental() -%}
    select *
    from {{ rows_with_keys(
        ref('stg_instore_orders_changes'), 'document_key', 'select document_key from changed_documents'
    ) }} as changes
    {%- else -%}
    select * from {{ ref('stg_instore_orders_changes') }}
    {%- endif %}
),

last_change as (
    -- the latest change decides whether the document is deleted
    select
        document_key,
        operation = 'delete' as is_deleted,
        operation as last_operation,
        cluster_time as _cluster_time,
        cluster_at as _cluster_at
    from changes
    qualify row_number() over (
        partition by document_key
        order by cluster_time desc, _batch_id desc, operation = 'delete' desc, _document_hash desc
    ) = 1
),

last_document as (
    -- the fields come from the latest change that carried a document, so a deleted document
    -- keeps its customer (marts know whose numbers to recompute)
    select
        document_key,
        customer_id,
        customer_email,
        channel,
        store_id,
        store_name,
        store_city,
        items,
        ordered_at,
        cluster_time as _document_cluster_time
    from changes
    where operation <> 'delete'
    qualify row_number() over (
        partition by document_key
        order by cluster_time desc, _batch_id desc, _document_hash desc
    ) = 1
),

history as (
    -- every customer the document ever had (all are recomputed when it changes), and the
    -- greatest landing batch reflected (the watermark)
    select
        document_key,
        {{ sorted_distinct_array_agg('customer_id') }} as _customer_ids,
        max(_batch_id) as _batch_id
    from changes
    group by document_key
)

select
    last_change.document_key as order_id,
    last_document.customer_id,
    last_document.customer_email,
    last_document.channel,
    last_document.store_id,
    last_document.store_name,
    last_document.store_city,
    last_document.items,
    last_document.ordered_at,
    -- the contract's in-store orders carry no status: a till sale is a sale (customer_traits)
    true as is_sale,
    last_change.is_deleted,
    last_change.last_operation,
    last_change._cluster_time,
    last_change._cluster_at,
    last_document._document_cluster_time,
    history._customer_ids,
    history._batch_id
from last_change
inner join history on history.document_key = last_change.document_key
left join last_document on last_document.document_key = last_change.document_key
