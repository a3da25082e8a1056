{#- Array helpers (DuckDB lists). Another adapter implements `<adapter>__...`. -#}

{#- Aggregate: the distinct non-null values of `expression`, sorted ascending. -#}
{% macro sorted_distinct_array_agg(expression) -%}
    {{ return(adapter.dispatch('sorted_distinct_array_agg', 'customer360')(expression)) }}
{%- endmacro %}
{% macro default__sorted_distinct_array_agg(expression) -%}
    list_sort(list_distinct(array_agg({{ expression }})))
{%- endmacro %}

{#- Table function in a select list: one row per element of the array `expression`. -#}
{% macro unnest_array(expression) -%}
    {{ return(adapter.dispatch('unnest_array', 'customer360')(expression)) }}
{%- endmacro %}
{% macro default__unnest_array(expression) -%}
    unnest({{ expression }})
{%- endmacro %}

{#- Aggregate over an array column: the distinct non-null elements of all arrays, sorted. -#}
{% macro sorted_distinct_array_union_agg(array_expression) -%}
    {{ return(adapter.dispatch('sorted_distinct_array_union_agg', 'customer360')(array_expression)) }}
{%- endmacro %}
{% macro default__sorted_distinct_array_union_agg(array_expression) -%}
    list_sort(list_distinct(flatten(array_agg({{ array_expression }}))))
{%- endmacro %}

{#- In a select list: one row per element of `array_expression`, as `element_alias`, with its
    1-based position as `index_alias`. -#}
{% macro unnest_array_with_index(array_expression, element_alias, index_alias) -%}
    {{ return(adapter.dispatch('unnest_array_with_index', 'customer360')(array_expression, element_alias, index_alias)) }}
{%- endmacro %}
{% macro default__unnest_array_with_index(array_expression, element_alias, index_alias) -%}
    unnest({{ array_expression }}) as {{ element_alias }},
    generate_subscripts({{ array_expression }}, 1) as {{ index_alias }}
{%- endmacro %}

{#- Aggregate: an array of records with the given fields ({name: expression}), ordered by
    `order_by`, of the rows where `filter` holds. -#}
{% macro record_array_agg(fields, order_by, filter) -%}
    {{ return(adapter.dispatch('record_array_agg', 'customer360')(fields, order_by, filter)) }}
{%- endmacro %}
{% macro default__record_array_agg(fields, order_by, filter) -%}
    coalesce(
        array_agg(struct_pack(
            {%- for name, expression in fields.items() %}{{ name }} := {{ expression }}{% if not loop.last %}, {% endif %}{% endfor -%}
        ) order by {{ order_by }}) filter (where {{ filter }}),
        []
    )
{%- endmacro %}

