{#- Why a landed record cannot be typed, or null when it can. Staging keeps only records whose
    reason is null; `stg_landing_batches` / `stg_rejected_records` list the others, so a bad
    record is visible and never breaks the build. Delete events carry no document and are
    always valid; so is an update without one (`mongo_update_of_deleted_document`), which
    staging skips (`mongo_change_is_staged`). -#}

{% macro mongo_rejection_reason(source_name) -%}
    case
        when operation = 'delete' then null
        when {{ customer360.mongo_update_of_deleted_document() }} then null
        when document is null then 'document is missing'
        when not json_valid(document) then 'document is not JSON'
        when coalesce(json_type(document), '') <> 'OBJECT' then 'document is not a JSON object'
    {%- if source_name == 'users' %}
        when {{ customer360.json_integer('document', '$.id') }} is null then 'id is not an integer'
    {%- elif source_name == 'instore_orders' %}
        {#- A guest (till) sale names its buyer by `customer_email` instead of `user_id`. #}
        when {{ customer360.json_present('document', '$.user_id') }}
            and {{ customer360.json_integer('document', '$.user_id') }} is null then 'user_id is not an integer'
        when not {{ customer360.json_present('document', '$.user_id') }}
            and nullif({{ customer360.trimmed_text(customer360.json_text('document', '$.customer_email')) }}, '') is null
            then 'neither user_id nor customer_email'
        when {{ customer360.json_timestamp('document', '$.date') }} is null then 'date is not a timestamp'
        when {{ customer360.json_order_items_invalid('document') }} then 'items are not valid line items'
    {%- else %}
        when {{ customer360.json_integer('document', '$.user_id') }} is null then 'user_id is not an integer'
        when {{ customer360.json_timestamp('document', '$.date') }} is null then 'date is not a timestamp'
        when {{ customer360.json_order_items_invalid('document') }} then 'items are not valid line items'
    {%- endif %}
    end
{%- endmacro %}

{#- An update whose document was deleted before the change stream looked it up: the stream
    reads an update's document when it reaches the change (`updateLookup`), and MongoDB gives
    none once the document is gone (an update and a delete in quick succession). The delete
    follows in the stream, so the change carries no state and is no error. -#}
{% macro mongo_update_of_deleted_document() -%}
    (operation = 'update' and document is null)
{%- endmacro %}

{#- Whether staging takes in a landed Mongo change: typed (no rejection reason) and carrying a
    document's state or its delete. -#}
{% macro mongo_change_is_staged(source_name) -%}
    ({{ customer360.mongo_rejection_reason(source_name) }} is null
     and not {{ customer360.mongo_update_of_deleted_document() }})
{%- endmacro %}

{#- Reads the fields of the value from `_value_fields` (json.sql, kafka_value_fields), which the
    model selects beside the record. -#}
{% macro kafka_rejection_reason(source_name) -%}
    {%- set key = 'event_id' if source_name == 'weblogs' else 'email_id' -%}
    {%- set key_field = customer360.kafka_value_field(source_name, '$.' ~ key) -%}
    {%- set user_id = customer360.kafka_value_field(source_name, '$.user_id') -%}
    {%- set date = customer360.kafka_value_field(source_name, '$.date') -%}
    case
        when not json_valid("value") then 'value is not JSON'
        when coalesce(json_type("value"), '') <> 'OBJECT' then 'value is not a JSON object'
        when nullif({{ customer360.trimmed_text(customer360.json_text(key_field, '$')) }}, '') is null then '{{ key }} is missing'
    {%- if source_name == 'weblogs' %}
        {#- An anonymous visitor's event carries `anonymous_id` (the browser's cookie) and no
            `user_id` until the visitor logs in. #}
        {%- set anonymous_id = customer360.kafka_value_field(source_name, '$.anonymous_id') %}
        when {{ customer360.json_present(user_id, '$') }}
            and {{ customer360.json_integer(user_id, '$') }} is null then 'user_id is not an integer'
        when not {{ customer360.json_present(user_id, '$') }}
            and nullif({{ customer360.trimmed_text(customer360.json_text(anonymous_id, '$')) }}, '') is null
            then 'neither user_id nor anonymous_id'
    {%- else %}
        when {{ customer360.json_integer(user_id, '$') }} is null then 'user_id is not an integer'
    {%- endif %}
        when {{ customer360.json_timestamp(date, '$') }} is null then 'date is not a timestamp'
    {%- if source_name == 'marketing_emails' %}
        {%- set updated_at = customer360.kafka_value_field(source_name, '$.updated_at') %}
        when {{ customer360.json_present(updated_at, '$') }}
            and {{ customer360.json_timestamp(updated_at, '$') }} is null
            then 'updated_at is not a timestamp'
    {%- endif %}
    end
{%- endmacro %}

{#- Whether `path` holds a value other than JSON null (a missing key reads as absent). -#}
{% macro json_present(column, path) -%}
    coalesce(json_type({{ column }}, '{{ path }}'), 'NULL') <> 'NULL'
{%- endmacro %}
