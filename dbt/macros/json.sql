{#- Typed reads from JSON text. Everything warehouse-specific about JSON lives here: another
    adapter gets its own `<adapter>__json_*` implementation, the models stay as they are.
    `path` is a JSONPath such as '$.user_id' or '$.address.city'. A value of the wrong type
    reads as null, so a model can reject the record instead of failing the build. -#}

{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text', 'customer360')(column, path)) }}
{%- endmacro %}
{% macro default__json_text(column, path) -%}
    json_extract_string({{ column }}, '{{ path }}')
{%- endmacro %}

{#- An integer: a JSON integer, or a string of digits; 12.5, "abc", true read as null. -#}
{% macro json_integer(column, path) -%}
    {{ return(adapter.dispatch('json_integer', 'customer360')(column, path)) }}
{%- endmacro %}
{% macro default__json_integer(column, path) -%}
    case
        when json_type({{ column }}, '{{ path }}') in ('BIGINT', 'UBIGINT')
            then try_cast(json_extract_string({{ column }}, '{{ path }}') as bigint)
        when json_type({{ column }}, '{{ path }}') = 'VARCHAR'
            and regexp_full_match({{ customer360.trimmed_text("json_extract_string(" ~ column ~ ", '" ~ path ~ "')") }}, '-?[0-9]+')
            then try_cast({{ customer360.trimmed_text("json_extract_string(" ~ column ~ ", '" ~ path ~ "')") }} as bigint)
    end
{%- endmacro %}

{#- A boolean: JSON true/false; anything else reads as null. -#}
{% macro json_boolean(column, path) -%}
    {{ return(adapter.dispatch('json_boolean', 'customer360')(column, path)) }}
{%- endmacro %}
{% macro default__json_boolean(column, path) -%}
    case json_type({{ column }}, '{{ path }}')
        when 'BOOLEAN' then json_extract_string({{ column }}, '{{ path }}') = 'true'
    end
{%- endmacro %}

{#- A UTC timestamp from an ISO-8601 string (any offset, converted to UTC: parse_utc_timestamp
    says which forms) or from Mongo relaxed
    extended JSON: {"$date": "...Z"} or {"$date": {"$numberLong": "<ms since epoch>"}}. Milliseconds
    beyond a timestamp's range read as null (epoch_ms raises on them: one such record failed
    every build). -#}
{% macro json_timestamp(column, path) -%}
    {{ return(adapter.dispatch('json_timestamp', 'customer360')(column, path)) }}
{%- endmacro %}
{% macro default__json_timestamp(column, path) -%}
    case
        when json_type({{ column }}, '{{ path }}') = 'VARCHAR'
            then {{ customer360.parse_utc_timestamp("json_extract_string(" ~ column ~ ", '" ~ path ~ "')") }}
        when json_type({{ column }}, '{{ path }}.$date') = 'VARCHAR'
            then {{ customer360.parse_utc_timestamp("json_extract_string(" ~ column ~ ", '" ~ path ~ ".$date')") }}
        when json_type({{ column }}, '{{ path }}.$date') in ('BIGINT', 'UBIGINT')
            then try_cast(try(epoch_ms(try_cast(json_extract_string({{ column }}, '{{ path }}.$date') as bigint))) as timestamp)
        when json_type({{ column }}, '{{ path }}.$date.$numberLong') = 'VARCHAR'
            then try_cast(try(epoch_ms(try_cast(json_extract_string({{ column }}, '{{ path }}.$date.$numberLong') as bigint))) as timestamp)
    end
{%- endmacro %}

{#- ISO-8601 / RFC 3339 text to a UTC timestamp without time zone: a calendar date, alone or
    with a time after `T`, `t` or a space, in the extended (2026-05-01T10:00:00) or the basic
    (20260501T100000) format, a fraction after `.` or `,`, an offset `Z`, `z`, ±hh, ±hhmm or
    ±hh:mm, or none (taken as UTC: the profile sets TimeZone=UTC), whitespace around it
    ignored. Week and ordinal dates are not read. Unparseable text is null, and so are
    'infinity' and '-infinity', which the cast accepts (an order dated '-infinity' made
    customer_traits fail). DuckDB's cast reads the common form; the others are rewritten to it
    first, only where it failed (COALESCE evaluates its second argument for those rows only). -#}
{% macro parse_utc_timestamp(text_expression) -%}
    {{ return(adapter.dispatch('parse_utc_timestamp', 'customer360')(text_expression)) }}
{%- endmacro %}
{% macro default__parse_utc_timestamp(text_expression) -%}
    {%- set rewritten -%}
        regexp_replace(
            regexp_replace(
                regexp_replace(
                    upper({{ customer360.trimmed_text(text_expression) }}),
                    '^([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})', '\1-\2-\3T\4:\5:\6'
                ),
                '^([0-9]{4})([0-9]{2})([0-9]{2})$', '\1-\2-\3'
            ),
            '^([^,]*[0-9]{2}:[0-9]{2}:[0-9]{2}),([0-9])', '\1.\2'
        )
    {%- endset -%}
    {%- set parsed -%}
        timezone('UTC', coalesce(try_cast({{ text_expression }} as timestamptz), try_cast({{ rewritten }} as timestamptz)))
    {%- endset -%}
    case when isfinite({{ parsed }}) then {{ parsed }} end
{%- endmacro %}

{#- A date from 'YYYY-MM-DD' text; anything else is null. -#}
{% macro json_date(column, path) -%}
    {{ return(adapter.dispatch('json_date', 'customer360')(column, path)) }}
{%- endmacro %}
{% macro default__json_date(column, path) -%}
    try_cast(try_strptime(json_extract_string({{ column }}, '{{ path }}'), '%Y-%m-%d') as date)
{%- endmacro %}

{#- The order line items of a Mongo order document as a typed array of
    struct(product_id, product_name, category, price, quantity), in document order. -#}
{% macro json_order_items(column) -%}
    {{ return(adapter.dispatch('json_order_items', 'customer360')(column)) }}
{%- endmacro %}
{% macro default__json_order_items(column) -%}
    from_json(
        json_extract({{ column }}, '$.items'),
        '[{"product_id": "VARCHAR", "product_name": "VARCHAR", "category": "VARCHAR", "price": "DECIMAL(28,6)", "quantity": "BIGINT"}]'
    )
{%- endmacro %}

{#- True when `items` is not an array, or an item has a price that is not a non-negative
    number or a quantity that is not a positive integer (or either does not fit its type), or
    an amount (price x quantity) of 10^22 or more, which does not fit the price's type (the
    marts' totals, decimal(38, 6), then hold 10^10 such amounts a customer: no valid order can
    overflow a sum). -#}
{#- The largest amount a line item may have, in millionths: that of DECIMAL(28, 6), the price's
    type. -#}
{% macro largest_amount_micros() -%}
    cast('9999999999999999999999999999' as hugeint)
{%- endmacro %}

{% macro json_order_items_invalid(column) -%}
    {{ return(adapter.dispatch('json_order_items_invalid', 'customer360')(column)) }}
{%- endmacro %}
{% macro default__json_order_items_invalid(column) -%}
    (
        coalesce(json_type({{ column }}, '$.items'), 'NULL') <> 'ARRAY'
        or coalesce(list_bool_or(list_transform(
            json_extract({{ column }}, '$.items[*]'),
            lambda item: coalesce(json_type(item, '$.price') not in ('BIGINT', 'UBIGINT', 'DOUBLE'), true)
                or coalesce(json_type(item, '$.quantity') not in ('BIGINT', 'UBIGINT'), true)
                or try_cast(json_extract_string(item, '$.price') as double) < 0
                or try_cast(json_extract_string(item, '$.quantity') as bigint) <= 0
        )), false)
        -- a number that does not fit the typed column (e.g. a price of 1e30), or an amount
        -- (price x quantity) that does not fit the price's type: exactly, in whole millionths
        -- (the largest price's millionths times the largest quantity would overflow any type;
        -- a price of 0 divides by 1: no quantity exceeds 10^28)
        or coalesce(list_bool_or(list_transform(
            {{ customer360.json_order_items(column) }},
            lambda item: item.price is null or item.quantity is null
                or item.quantity > {{ customer360.largest_amount_micros() }} // greatest(1, cast(item.price * 1000000 as hugeint))
        )), false)
    )
{%- endmacro %}

{#- A Kafka record's value is parsed once per record, not once per field read: `kafka_value_fields`
    extracts, in one parse, every field the topic's typing and rejection rules read (its paths
    listed once, in `kafka_value_paths`), into a column `_value_fields` that the model selects
    beside the record; `kafka_value_field` names one of them, to be read with the macros above
    at path '$' (a field holds the same JSON as the path in the value: the same reads give the
    same values). A value that is not JSON has no fields (the rules reject it first). Reading
    each field from the value parsed it ~25 times per weblog record (dbt README, "A Kafka
    record's value is parsed once"). -#}
{% macro kafka_value_paths(source_name) -%}
    {{- return({
        'weblogs': ['$.event_id', '$.user_id', '$.anonymous_id', '$.session_id', '$.page',
                    '$.action', '$.error_message', '$.date'],
        'marketing_emails': ['$.email_id', '$.user_id', '$.recipient_email', '$.campaign',
                             '$.email_opened', '$.email_clicked', '$.unsubscribed', '$.date',
                             '$.updated_at'],
    }[source_name]) -}}
{%- endmacro %}

{% macro kafka_value_fields(source_name) -%}
    {{ return(adapter.dispatch('kafka_value_fields', 'customer360')(source_name)) }}
{%- endmacro %}
{% macro default__kafka_value_fields(source_name) -%}
    case when json_valid("value") then json_extract("value", [
        {%- for path in customer360.kafka_value_paths(source_name) -%}
        '{{ path }}'{% if not loop.last %}, {% endif %}
        {%- endfor -%}
    ]) end
{%- endmacro %}

{% macro kafka_value_field(source_name, path) -%}
    {%- set paths = customer360.kafka_value_paths(source_name) -%}
    {%- if path not in paths -%}
        {{ exceptions.raise_compiler_error("kafka_value_field: " ~ path ~ " is not in kafka_value_paths('" ~ source_name ~ "')") }}
    {%- endif -%}
    {{ return(adapter.dispatch('kafka_value_field', 'customer360')(paths.index(path))) }}
{%- endmacro %}
{% macro default__kafka_value_field(index) -%}
    _value_fields[{{ index + 1 }}]
{%- endmacro %}
