{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='document_key',
    )
}}

{#- The current state of each `users` document, recomputed from all its changes
    (stg_users_changes) whenever it has a new one, so an incremental build gives what a
    full refresh gives. Order of a document's changes: cluster time, then landing batch, then a
    delete after a document at the same position, then `_document_hash` (any fixed order). -#}

with changed_documents as (
    -- the documents with a change this model has not taken in yet
    select distinct document_key
    from {{ ref('stg_users_changes') }}
    where _batch_id > {{ batch_watermark() }}
),

changes as (
    -- all the changes of those documents, old ones included
    {% if is_incremental() -%}
    select *
    from {{ rows_with_keys(
        ref('stg_users_changes'), 'document_key', 'select document_key from changed_documents'
    ) }} as changes
    {%- else -%}
    select * from {{ ref('stg_users_changes') }}
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
        first_name,
        last_name,
        email,
        gender,
        street,
        city,
        postcode,
        country,
        dob,
        created_at,
        updated_at,
        email_consent_status,
        email_consent_at,
        cluster_time as _document_cluster_time
    from changes
    where operation <> 'delete'
    qualify row_number() over (
        partition by document_key
        order by cluster_time desc, _batch_id desc, _document_hash desc
    ) = 1
),

{#- When the document's current consent status was set, for a statement without `at`: the
    updated_at (else MongoDB's change time) of the first change of the latest run of changes
    carrying that status, so a later change of other fields (a move, a new address) does not
    restate the consent. -#}
consent_runs as (
    select
        document_key,
        changed_at,
        run,
        max(run) over (partition by document_key) as latest_run
    from (
        select
            document_key,
            coalesce(updated_at, cluster_at) as changed_at,
            -- a run: consecutive changes carrying the same status (it only grows)
            sum(case when status_changed then 1 else 0 end) over (
                partition by document_key
                order by cluster_time, _batch_id, _document_hash
                rows between unbounded preceding and current row
            ) as run
        from (
            select
                *,
                lower({{ trimmed_text('email_consent_status') }}) is distinct from lag(lower({{ trimmed_text('email_consent_status') }})) over (
                    partition by document_key order by cluster_time, _batch_id, _document_hash
                ) as status_changed
            from changes
            where operation <> 'delete'
        ) as documents
    ) as numbered
),

consent_stated as (
    select document_key, min(changed_at) as email_consent_stated_at
    from consent_runs
    where run = latest_run
    group by document_key
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
    last_change.document_key,
    last_document.customer_id,
    last_document.first_name,
    last_document.last_name,
    last_document.email,
    last_document.gender,
    last_document.street,
    last_document.city,
    last_document.postcode,
    last_document.country,
    last_document.dob,
    last_document.created_at,
    last_document.updated_at,
    last_document.email_consent_status,
    last_document.email_consent_at,
    consent_stated.email_consent_stated_at,
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
left join consent_stated on consent_stated.document_key = last_change.document_key
