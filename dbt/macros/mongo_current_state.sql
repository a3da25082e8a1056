{#- The current state of each Mongo document from its change events (CDC), merged with the state
    already in `{{ this }}` on an incremental build.

    `changes_cte` holds the typed, valid change rows read this build: document_key, operation,
    cluster_time, cluster_at, batch_id and the `columns` parsed from the document (null for a
    delete). Order of changes: (cluster_time, batch_id), then a delete after a document with the
    same position, then the larger document text. Per document it yields:
    - the last change: `is_deleted`, `last_operation`, `_cluster_time`, `_cluster_at`;
    - the `columns` of the last change that carried a document (kept for a deleted document, so
      marts know whose numbers to recompute), at `_document_cluster_time`;
    - `_customer_ids`: every customer id the document ever had (sorted);
    - `_batch_id`: the greatest batch id reflected (the watermark).
    Each is a max/argmax over the change rows, so merging the previous state with the new rows
    gives what a full build over all rows gives. The document key is output as `key`. -#}
{% macro mongo_current_state(changes_cte, columns, key='document_key') -%}
ordered_changes as (
    select
        *,
        operation = 'delete' as is_delete,
        row_number() over (
            partition by document_key
            order by cluster_time desc, batch_id desc, operation = 'delete' desc, document_text desc
        ) as change_rank,
        case when operation <> 'delete' then row_number() over (
            partition by document_key, operation = 'delete'
            order by cluster_time desc, batch_id desc, document_text desc
        ) end as document_rank
    from {{ changes_cte }}
),

new_last_change as (
    select document_key, is_delete, operation, cluster_time, cluster_at, batch_id
    from ordered_changes
    where change_rank = 1
),

new_last_document as (
    select document_key, cluster_time, batch_id, {{ columns | join(', ') }}
    from ordered_changes
    where document_rank = 1
),

new_rollup as (
    select
        document_key,
        max(batch_id) as _batch_id,
        {{ customer360.sorted_distinct_array_agg('customer_id') }} as _customer_ids
    from ordered_changes
    group by document_key
),

{% if is_incremental() %}
previous_state as (
    select
        {{ key }} as document_key,
        {{ columns | join(', ') }},
        is_deleted,
        last_operation,
        _cluster_time,
        _cluster_at,
        _document_cluster_time,
        _customer_ids,
        _batch_id
    from {{ customer360.rows_with_keys(this, key, 'select document_key from new_rollup') }} as stored
),

{#- New rows always come from later batches than the previous state, so on equal cluster time
    the new row wins. -#}
last_change as (
    select
        coalesce(n.document_key, p.document_key) as document_key,
        case when p.document_key is null or n.cluster_time >= p._cluster_time then n.is_delete else p.is_deleted end as is_deleted,
        case when p.document_key is null or n.cluster_time >= p._cluster_time then n.operation else p.last_operation end as last_operation,
        case when p.document_key is null or n.cluster_time >= p._cluster_time then n.cluster_time else p._cluster_time end as _cluster_time,
        case when p.document_key is null or n.cluster_time >= p._cluster_time then n.cluster_at else p._cluster_at end as _cluster_at
    from new_last_change as n
    left join previous_state as p on p.document_key = n.document_key
),

last_document as (
    select
        document_key,
        {{ columns | join(', ') }},
        _document_cluster_time
    from (
        select document_key, {{ columns | join(', ') }}, cluster_time as _document_cluster_time, 1 as recency
        from new_last_document
        union all
        select document_key, {{ columns | join(', ') }}, _document_cluster_time, 0 as recency
        from previous_state
        where _document_cluster_time is not null
    ) as candidates
    qualify row_number() over (
        partition by document_key order by _document_cluster_time desc, recency desc
    ) = 1
),

rollup as (
    select
        n.document_key,
        greatest(n._batch_id, coalesce(p._batch_id, -1)) as _batch_id,
        {{ customer360.sorted_distinct_array_agg('ids.customer_id') }} as _customer_ids
    from new_rollup as n
    left join previous_state as p on p.document_key = n.document_key
    left join (
        select document_key, {{ customer360.unnest_array('_customer_ids') }} as customer_id from new_rollup
        union all
        select document_key, {{ customer360.unnest_array('_customer_ids') }} as customer_id from previous_state
    ) as ids on ids.document_key = n.document_key
    group by n.document_key, n._batch_id, p._batch_id
),
{% else %}
last_change as (
    select
        document_key,
        is_delete as is_deleted,
        operation as last_operation,
        cluster_time as _cluster_time,
        cluster_at as _cluster_at
    from new_last_change
),

last_document as (
    select document_key, {{ columns | join(', ') }}, cluster_time as _document_cluster_time
    from new_last_document
),

rollup as (
    select * from new_rollup
),
{% endif %}

current_state as (
    select
        last_change.document_key as {{ key }},
        {% for column in columns -%}
        last_document.{{ column }},
        {% endfor -%}
        last_change.is_deleted,
        last_change.last_operation,
        last_change._cluster_time,
        last_change._cluster_at,
        last_document._document_cluster_time,
        rollup._customer_ids,
        rollup._batch_id
    from last_change
    inner join rollup on rollup.document_key = last_change.document_key
    left join last_document on last_document.document_key = last_change.document_key
)
{%- endmacro %}
