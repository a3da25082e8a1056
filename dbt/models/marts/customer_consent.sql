{%- set inputs = ['users', 'marketing_emails'] %}

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_keys',
        unique_key='customer_id',
        post_hook=watermark_hook(inputs),
    )
}}

{#- The current email marketing consent of every customer: the latest of the users document's
    `consent.email` and the customer's unsubscribes (see the yml for the rule). -#}

with
{% if is_incremental() %}
touched as (
    {{ touched_customers(inputs) }}
),
{% endif %}

customers as (
    select customer_id, document_key
    from {{ ref('int_customers') }}
    {% if is_incremental() -%}
    where customer_id in (select customer_id from touched)
    {%- endif %}
),

{#- The profile's own statement: 'granted' or 'withdrawn' (any case, trimmed), at
    `consent.email.at`, or if that is missing when the document took that status (the
    updated_at of the change that set it, not of later changes to other fields). -#}
profile_consent as (
    select
        customers.customer_id,
        lower({{ trimmed_text('users.email_consent_status') }}) as email_consent,
        coalesce(users.email_consent_at, users.email_consent_stated_at) as email_consent_since,
        'profile' as email_consent_source
    from customers
    inner join {{ ref('stg_users') }} as users on users.document_key = customers.document_key
    where lower({{ trimmed_text('users.email_consent_status') }}) in ('granted', 'withdrawn')
),

unsubscribes as (
    select
        customer_id,
        'withdrawn' as email_consent,
        max(last_unsubscribed_at) as email_consent_since,
        'unsubscribe' as email_consent_source
    from {{ ref('stg_marketing_emails') }}
    where last_unsubscribed_at is not null
        and customer_id in (select customer_id from customers)
    group by customer_id
),

{#- Latest wins; a statement without a time is the oldest; on the same time a withdrawal wins. -#}
latest as (
    select *
    from (
        select * from profile_consent
        union all
        select * from unsubscribes
    ) as statements
    qualify row_number() over (
        partition by customer_id
        order by email_consent_since desc nulls last, email_consent = 'withdrawn' desc, email_consent_source asc
    ) = 1
),

marks as (
    select customer_id, _users_batch_id, _emails_batch_id
    from {{ ref('int_customer_marks') }}
    where customer_id in (select customer_id from customers)
),

final as (
    select
        customers.customer_id,
        coalesce(latest.email_consent, 'unknown') as email_consent,
        latest.email_consent_since,
        latest.email_consent_source,
        marks._users_batch_id,
        marks._emails_batch_id
    from customers
    left join marks on marks.customer_id = customers.customer_id
    left join latest on latest.customer_id = customers.customer_id
)

{{ select_with_tombstones('final', 'touched') }}
