{#- A SQL string literal of `text` (quotes doubled). -#}
{% macro sql_string(text) -%}
    '{{ text | string | replace("'", "''") }}'
{%- endmacro %}

{#- A value of a project var as a SQL literal: a string quoted, none as null, a number as
    written. Compiles to the same SQL every time the project does. -#}
{% macro sql_literal(value) -%}
    {%- if value is none -%}null
    {%- elif value is string -%}{{ customer360.sql_string(value) }}
    {%- else -%}{{ value }}
    {%- endif -%}
{%- endmacro %}

{#- A constant one-column table as a select: one row per value of `values` (SQL literals, see
    sql_literal), in a column named `column`. -#}
{% macro values_column(values, column) -%}
    select {{ column }}
    from (values
        {%- for value in values %}
        ({{ customer360.sql_literal(value) }}){% if not loop.last %},{% endif %}
        {%- endfor %}
    ) as constants ({{ column }})
{%- endmacro %}
