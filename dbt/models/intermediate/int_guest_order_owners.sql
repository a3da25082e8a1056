{%- set inputs = ['users', 'instore_orders'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='order_id',
        post_hook=watermark_hook(inputs),
    )
}}


{#- Who bought each in-store order that names, or ever named, its buyer by `customer_email` (a
    guest or till sale), one row per such order.

    The rule (dbt/README.md, "Identity stitching"): an order without `user_id` belongs to the
    customer whose users email, trimmed and lower-cased, equals the order's at the time of the
    order (`ordered_at`). A users document's address holds from its change time (cluster_at)
    until the document's next change; its first address also holds before (the customer had it
    when the history began). So an email change moves only later orders: an order matched to A
    before A changed address stays A's. An address held by two customers at the order's time
    matches neither (`ambiguous_email`); none: `unmatched_email`. An order with a `user_id` is
    that customer's whatever its email (`user_id`; the marts read it from staging), and so is
    one whose address was replaced by a user_id (its row stays, with no email_key).

    `_customer_ids`: every customer who ever held any address the order ever carried
    (int_guest_order_addresses): the customers whose marts a change of the order, or of who
    held its addresses, can change, the one who lost it included (its address corrected to
    another customer's, replaced by a user_id, the order deleted, the address turned
    ambiguous). Touched: orders changed since the watermark, and the orders that ever carried an
    address a changed users document ever held. -#}

-- depends_on: {{ ref('int_customers') }}
-- (built after it: its post-hook creates intermediate.dbt_watermarks on a first build, and
-- two models creating that table side by side conflict)
with
{% if is_incremental() %}
changed_documents as (
    select document_key
    from {{ ref('stg_users') }}
    where _batch_id > {{ model_watermark('users') }}
),

touched_addresses as (
    select distinct email_key
    from {{ ref('stg_user_emails') }}
    where document_key in (select document_key from changed_documents)
        and email_key is not null
),

touched as (
    select order_id
    from {{ ref('stg_instore_orders') }}
    where _batch_id > {{ model_watermark('instore_orders') }}
    union
    select order_id
    from {{ ref('int_guest_order_addresses') }}
    where email_key in (select email_key from touched_addresses)
),
{% endif %}

{#- Every address each (touched) order ever carried. -#}
order_addresses as (
    select order_id, email_key
    from {{ ref('int_guest_order_addresses') }}
    {% if is_incremental() -%}
    where order_id in (select order_id from touched)
    {%- endif %}
),

orders as (
    select
        order_id,
        customer_id as user_id,
        {{ normalized_email('customer_email') }} as email_key,
        ordered_at,
        items,
        is_sale,
        is_deleted,
        _cluster_at,
        _batch_id
    from {{ ref('stg_instore_orders') }}
    where order_id in (select order_id from order_addresses)
),

{#- Every change of every users document that ever held one of these addresses. -#}
document_changes as (
    select *
    from {{ ref('stg_user_emails') }}
    where document_key in (
        select document_key
        from {{ ref('stg_user_emails') }}
        where email_key in (select email_key from order_addresses)
    )
),

document_periods as (
    select
        customer_id,
        email_key,
        changed_at as valid_from,
        coalesce(lead(changed_at) over document_order, 'infinity'::timestamp) as valid_to,
        row_number() over document_order = 1 as is_first
    from document_changes
    window document_order as (
        partition by document_key order by cluster_time, _batch_id, is_delete
    )
),

{#- Who held each address when: from each change until the document's next one, and a
    document's first address also before its first change (`backdated`: the customer may have
    had it before the history began, or bought as a guest before registering), back to when
    another customer last held that address by a change (the end of the latest such period
    that began before it; else from always). So a customer who registers with an address
    another customer held before does not take the orders made while, or before, the other
    held it, nor make them ambiguous. A backdated holder counts only where no change had set
    the address for anyone (matches). -#}
address_periods as (
    select customer_id, email_key, valid_from, valid_to, false as backdated
    from document_periods
    union all
    select
        first_periods.customer_id,
        first_periods.email_key,
        coalesce((
            select max(least(others.valid_to, first_periods.valid_from))
            from document_periods as others
            where others.email_key = first_periods.email_key
                and others.customer_id <> first_periods.customer_id
                and others.valid_from < first_periods.valid_from
        ), '-infinity'::timestamp) as valid_from,
        first_periods.valid_from as valid_to,
        true as backdated
    from document_periods as first_periods
    where first_periods.is_first
),

{#- Per address, the customer of every change of every document that ever held it (a document's
    id may change), and that change's batch. -#}
address_holders as (
    select distinct
        address_documents.email_key,
        document_changes.customer_id,
        document_changes._batch_id
    from (
        select distinct email_key, document_key from document_changes where email_key is not null
    ) as address_documents
    inner join document_changes on document_changes.document_key = address_documents.document_key
),

{#- Per order, over every address it ever carried. -#}
order_holders as (
    select
        order_addresses.order_id,
        {{ sorted_distinct_array_agg('address_holders.customer_id') }} as _customer_ids,
        max(address_holders._batch_id) as _users_batch_id
    from order_addresses
    inner join address_holders on address_holders.email_key = order_addresses.email_key
    group by order_addresses.order_id
),

matches as (
    select
        orders.order_id,
        count(distinct address_periods.customer_id) as holders,
        min(address_periods.customer_id) as customer_id
    from orders
    inner join address_periods
        on address_periods.email_key = orders.email_key
        and address_periods.valid_from <= orders.ordered_at
        and orders.ordered_at < address_periods.valid_to
        and address_periods.customer_id is not null
    group by orders.order_id, address_periods.backdated
    -- the holders set by a change, if any; else the backdated ones
    qualify row_number() over (partition by orders.order_id order by address_periods.backdated) = 1
),

final as (
    select
        orders.order_id,
        case when orders.user_id is null and matches.holders = 1 then matches.customer_id end as customer_id,
        case
            when orders.user_id is not null then 'user_id'
            when matches.holders = 1 then 'email'
            when matches.holders > 1 then 'ambiguous_email'
            else 'unmatched_email'
        end as attribution,
        orders.email_key,
        orders.ordered_at,
        orders.items,
        orders.is_sale,
        orders.is_deleted,
        coalesce(order_holders._customer_ids, []) as _customer_ids,
        orders._cluster_at,
        greatest(orders._batch_id, coalesce(order_holders._users_batch_id, -1)) as _batch_id,
        {#- The two landing tables' batch ids apart: downstream models find the rows rewritten
            since they ran by each against its own watermark (rows_since_watermark). #}
        orders._batch_id as _orders_batch_id,
        coalesce(order_holders._users_batch_id, -1) as _users_batch_id
    from orders
    left join matches on matches.order_id = orders.order_id
    left join order_holders on order_holders.order_id = orders.order_id
)

{{ select_with_tombstones('final', 'touched', key='order_id') }}
